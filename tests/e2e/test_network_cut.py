"""A network cut of a minute in the middle of a run: packing goes on, everything converges after.

The cut is the cloud gone (SIGKILL, so no goodbye on the connection) for `DOCKSIDE_CUT_S` seconds
(60 by default) while a packer keeps scanning at a steady pace.
"""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest

from bench.demo_data import demo_orders
from bench.provision import provision
from bench.stack import restartable_address, running_stack, wait_for
from cloud.storage.store import CloudStore
from tests.e2e.conftest import put_next_parcel

CUT_S = float(os.environ.get("DOCKSIDE_CUT_S", "60"))
PACE_S = 0.1  # a brisk packer: ten scans a second
ORDERS = 1_000
SCALE_WAIT_S = 10.0  # each scan waits for its new parcel to settle (a deadline, rarely reached)

# A deadline against a hang, well past the run on a busy machine (the suite's default is 180 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_packing_goes_on_through_a_minute_long_cut_and_converges(tmp_path) -> None:
    with running_stack(tmp_path) as stack:
        stack.start_cloud(grpc=restartable_address())  # restarted on it after the cut
        stack.start_printer(serial="ZD421-CUT")
        stack.start_scale()
        provision(stack, order_count=ORDERS, order_prefix="CUT")
        stack.enroll_agent("WH1")
        stack.start_agent(extra=("--scale-wait", str(SCALE_WAIT_S)))
        client = stack.agent_client()
        wait_for(
            lambda: client.get(f"/api/v1/orders/CUT-{ORDERS:04d}").status_code == 200,
            timeout=60,
            what="the orders to reach the agent",
        )
        grpc_address = stack.cloud.ready["grpc"]
        packed_offline: list[str] = []
        n = 0

        def pack() -> None:
            nonlocal n
            n += 1
            ref = f"CUT-{n:04d}"
            put_next_parcel(stack, n)
            response = client.post(
                "/api/v1/pack", json={"order_ref": ref, "station": "S1", "request_id": f"cut-{n}"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "sent", response.text
            packed_offline.append(ref)

        for _ in range(20):  # online, before the cut
            pack()
        packed_online = list(packed_offline)
        packed_offline.clear()
        stack.cloud.stop(kill=True)
        pace = threading.Event()
        cut_ends = time.monotonic() + CUT_S
        next_scan = time.monotonic()
        while time.monotonic() < cut_ends and n < ORDERS - 10:
            pack()
            next_scan += PACE_S
            pace.wait(max(0.0, next_scan - time.monotonic()))
        status = client.get("/api/v1/status").json()
        assert status["online"] is False
        assert status["outbox_depth"] >= len(packed_offline)

        stack.start_cloud(grpc=grpc_address)
        late = demo_orders(1, prefix="AFTERCUT")[0]
        stack.admin_call("POST", "/api/v1/orders", {"orders": [late]})
        # Converged: the outbox is empty, and the agent has what the cloud published after the cut.
        wait_for(
            lambda: client.get("/api/v1/status").json()["outbox_depth"] == 0,
            timeout=60,
            what="the outbox to drain after the cut",
        )
        wait_for(
            lambda: client.get("/api/v1/orders/AFTERCUT-0001").status_code == 200,
            timeout=30,
            what="an order published after the cut to reach the agent",
        )
        wait_for(lambda: client.get("/api/v1/status").json()["online"], timeout=30, what="the agent online")
        labels = stack.control("printer", "GET", "/labels")
        client.close()
        store = CloudStore.open(stack.database_url, create=False, listen=False)
        try:
            with store.read() as conn:
                kinds = collections.Counter(
                    (row[0], row[1])
                    for row in conn.exec_driver_sql(
                        "SELECT order_ref, kind FROM order_events WHERE source = 'edge'"
                    )
                )
        finally:
            store.close()

    assert len(packed_offline) >= CUT_S  # packing went on throughout (at least a scan a second)
    assert len(labels) == len(packed_online) + len(packed_offline)
    for ref in packed_online + packed_offline:
        assert kinds[(ref, "order_packed")] == 1, ref
        assert kinds[(ref, "label_printed")] == 1, ref
