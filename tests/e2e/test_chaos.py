"""Chaos on real processes: the agent SIGKILLed mid-run and restarted, the cloud killed and restarted.

Three kills land at random instants of a pack, which now mostly waits for its parcel's weight,
so they seldom hit the microseconds between "job committed `sending`" and "job committed
`printed`". A fourth lands there for certain: right after the first random kill's restart, before
the packer scans again, the agent prints a wave into a printer that stops reading in the middle
of a label (see tests/e2e/stalling_printer.py) and is killed while a job is blocked in `sending`.

The packs run at four stations of the warehouse, each with its own scale and printer, as four
packers scan at once: a pack mostly waits for its parcel to settle, and four waits overlap. The
kills and the cloud's outage fall between packs, as in a run at one station: the packers finish
what they scanned, then the kill lands in the middle of one pack at station S1 (the printer that
can stall), with no other pack in flight.

Afterwards the mock printers' ledgers show no order printed twice, every edge event is in the
cloud exactly once, and every job a kill interrupted is `unknown` with an exception raised.
"""

from __future__ import annotations

import collections
import os
import random
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from bench.demo_data import demo_orders, station_body
from bench.provision import ingest_orders, provision
from bench.stack import Stack, restartable_address, running_stack, wait_for
from cloud.storage.store import CloudStore
from tests.e2e.conftest import PARCELS_G, put_next_parcel
from tests.e2e.stalling_printer import WAVE_ORDERS, StuckJob, kill_agent_while_sending, start_small_printer

PACKS = 2_000
AGENT_KILLS = 3
SCALE_WAIT_S = 10.0  # each scan waits for its new parcel to settle (a deadline, rarely reached)
# S1 prints on the printer that can stall (the kill inside `sending`); the kills land at S1.
STATIONS = ("S1", "S2", "S3", "S4")
_REF = re.compile(r"C[HW]-\d{4}")  # CH: scanned packs, CW: the wave printed into a stall

# A deadline against a hang, well past the run on a busy machine (the suite's default is 180 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _start(stack: Stack) -> httpx.Client:
    stack.start_agent(extra=("--scale-wait", str(SCALE_WAIT_S)))
    return stack.agent_client()


def _devices(station: str) -> tuple[str, str]:
    """The names in the stack of the station's mock printer and mock scale."""
    return ("printer", "scale") if station == STATIONS[0] else (f"printer-{station}", f"scale-{station}")


def _start_other_stations(stack: Stack) -> None:
    """Stations S2.. with their own mock printer and scale, added to WH1 after `provision` made S1."""
    for station in STATIONS[1:]:
        printer, scale = _devices(station)
        stack.start_printer(printer, serial=f"ZD421-CHAOS-{station}")
        stack.start_scale(scale)
        stack.admin_call(
            "POST",
            "/api/v1/warehouses/WH1/stations",
            station_body(
                station,
                printer_id=f"ZD421-CHAOS-{station}",
                printer_port=int(stack.processes[printer].ready["port"]),
                scale_port=stack.processes[scale].ready["pty"],
            ),
        )


def _pack(client: httpx.Client, ref: str, request_id: str, station: str = "S1") -> dict[str, Any] | None:
    """The pack's answer, or None when the agent died under it."""
    try:
        response = client.post(
            "/api/v1/pack", json={"order_ref": ref, "station": station, "request_id": request_id}
        )
    except httpx.TransportError:
        return None
    assert response.status_code < 500 or response.status_code == 503, response.text
    return dict(response.json())


def test_kills_of_agent_and_cloud_lose_and_repeat_nothing(tmp_path) -> None:
    rng = random.Random(int(os.environ.get("DOCKSIDE_CHAOS_SEED", "20261122")))
    with running_stack(tmp_path) as stack:
        stack.start_cloud(grpc=restartable_address())  # restarted on it after the outage
        start_small_printer(stack, serial="ZD421-CHAOS")
        stack.start_scale()
        provision(stack, order_count=PACKS, order_prefix="CH")
        _start_other_stations(stack)
        wave_orders = demo_orders(WAVE_ORDERS, prefix="CW")
        ingest_orders(stack, wave_orders)
        # Released up front, so it reaches the agent even if its turn comes while the cloud is down.
        wave = stack.admin_call(
            "POST",
            "/api/v1/waves",
            {"warehouse": "WH1", "station": "S1", "order_refs": [o["order_ref"] for o in wave_orders]},
        )
        stack.enroll_agent("WH1")
        client = _start(stack)
        wait_for(
            lambda: all(
                client.get(f"/api/v1/orders/{ref}").status_code == 200
                for ref in (f"CH-{PACKS:04d}", wave_orders[-1]["order_ref"])
            ),
            timeout=60,
            what="the orders to reach the agent",
        )
        kills = set(rng.sample(range(50, PACKS - 50), AGENT_KILLS))
        stuck: StuckJob | None = None
        cloud_down, cloud_up = PACKS // 2, PACKS // 2 + 300
        grpc_address = stack.cloud.ready["grpc"]
        outcomes: dict[str, dict[str, Any] | None] = {}
        parcels: collections.Counter[str] = collections.Counter()  # parcels each station has had

        def put_parcel(station: str) -> None:
            parcels[station] += 1
            put_next_parcel(stack, parcels[station], scale=_devices(station)[1])

        def pack_in_turn(station: str, numbers: list[int]) -> None:
            """One packer: the station's orders one after the other, each on a new parcel."""
            # The packer's own client for its scale: the stack's one, shared by threads, left
            # connections unclosed.
            scale = f"http://{stack.processes[_devices(station)[1]].ready['control']}"
            with stack.agent_client() as packer, httpx.Client(base_url=scale, timeout=10) as hands:
                for n in numbers:
                    ref = f"CH-{n:04d}"
                    parcels[station] += 1
                    weight = {"grams": PARCELS_G[parcels[station] % 2], "stable": True}
                    hands.post("/weight", json=weight).raise_for_status()
                    answer = _pack(packer, ref, f"chaos-{n}", station)
                    assert answer is not None, ref
                    assert answer.get("status") == "sent", (ref, answer)
                    outcomes[ref] = answer

        def pack_at_every_station(numbers: list[int]) -> None:
            """The orders dealt in turn to the stations, their packers scanning at once; returns
            when every one is packed (or raises the first packer's failure)."""
            with ThreadPoolExecutor(len(STATIONS), thread_name_prefix="packer") as packers:
                shares = [
                    packers.submit(pack_in_turn, station, numbers[i :: len(STATIONS)])
                    for i, station in enumerate(STATIONS)
                ]
                for share in shares:
                    share.result()

        scanned: list[int] = []  # orders waiting for the next turn of the packers
        for n in range(1, PACKS + 1):
            ref = f"CH-{n:04d}"
            if n in (cloud_down, cloud_up) or n in kills:
                pack_at_every_station(scanned)
                scanned.clear()
            if n == cloud_down:
                stack.cloud.stop(kill=True)
            if n == cloud_up:
                stack.start_cloud(grpc=grpc_address)
            if n in kills:
                put_parcel("S1")
                # SIGKILL at a random instant while this pack is in flight.
                killer = threading.Timer(
                    rng.uniform(0.0, 0.01), stack.processes["agent"].stop, kwargs={"kill": True}
                )
                killer.start()
                outcomes[ref] = _pack(client, ref, f"chaos-{n}")
                killer.join()
                client.close()
                client = _start(stack)
                if stuck is None:
                    # On the fresh connection, the kill inside `sending`. This order's parcel stays
                    # on the scale meanwhile, so the scan below still weighs the right parcel (a
                    # restarted agent takes the parcel on the scale as a new one).
                    stuck = kill_agent_while_sending(stack, client, wave["id"], "chaos-wave")
                    client.close()
                    client = _start(stack)
                # The packer scans again with the same request: a finished job answers as it is.
                outcomes[ref] = _pack(client, ref, f"chaos-{n}")
                continue
            scanned.append(n)
        pack_at_every_station(scanned)

        # Everything converges: the outbox drains into the cloud.
        wait_for(
            lambda: client.get("/api/v1/status").json()["outbox_depth"] == 0,
            timeout=90,
            what="the outbox to drain",
        )
        labels = [
            label for station in STATIONS for label in stack.control(_devices(station)[0], "GET", "/labels")
        ]
        client.close()
        stack.processes["agent"].stop()
        with sqlite3.connect(stack.agent_dir("agent") / "agent.db") as conn:
            jobs = conn.execute("SELECT job_id, order_ref, status FROM jobs").fetchall()
        store = CloudStore.open(stack.database_url, create=False, listen=False)
        try:
            with store.read() as conn:
                events = [
                    (row[0], row[1], row[2])
                    for row in conn.exec_driver_sql(
                        "SELECT event_id, order_ref, kind FROM order_events WHERE source = 'edge'"
                    )
                ]
        finally:
            store.close()

    # The printers' ledgers: no order printed twice (this run asks for no reprint). The wave's
    # labels that went out before the kill inside `sending` are all `sent` (the stall came at the
    # wave's first label, so the printer confirmed none): each prints at most once when the
    # printer reads again (none, if the dead agent's kernel reset the connection).
    assert stuck is not None
    printed = collections.Counter(
        match.group(0) for label in labels for match in [_REF.search("\n".join(label["fields"]))] if match
    )
    assert len(labels) >= PACKS - AGENT_KILLS
    assert [ref for ref, count in printed.items() if count > 1] == []
    assert stuck.sent_before
    assert [ref for ref in stuck.printed_before if printed[ref] != 1] == []
    # One job per order, each printed (or sent, when a kill came before its printer confirmed it)
    # or, when a kill interrupted its send, unknown.
    per_order = collections.Counter(order_ref for _, order_ref, _ in jobs)
    assert [ref for ref, count in per_order.items() if count > 1] == []
    statuses = {order_ref: status for _, order_ref, status in jobs}
    assert set(statuses.values()) <= {"printed", "sent", "unknown"}
    unknown = {ref for ref, status in statuses.items() if status == "unknown"}
    assert unknown <= {f"CH-{n:04d}" for n in kills} | {stuck.order_ref}
    assert stuck.order_ref in unknown
    assert (stuck.job_id, stuck.order_ref, "unknown") in jobs
    # Every edge event is in the cloud exactly once, with the effects expected per job.
    assert len({event_id for event_id, _, _ in events}) == len(events)
    kinds = collections.Counter((order_ref, kind) for _, order_ref, kind in events)
    for ref, status in statuses.items():
        if status in ("printed", "sent"):
            assert kinds[(ref, "order_packed")] == 1, ref
            assert kinds[(ref, "label_printed")] == 1, ref
        else:
            assert kinds[(ref, "job_unknown")] == 1, ref
            assert kinds[(ref, "exception_raised")] == 1, ref
    assert all(count == 1 for (_, kind), count in kinds.items() if kind in ("order_packed", "label_printed"))
