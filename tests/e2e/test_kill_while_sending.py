"""An agent SIGKILLed while a label is in its `sending` window, on real processes.

The printer stops reading in the middle of a wave's labels (the mock's `stall`, a full receive
buffer on a real printer: the connection stays open and the TCP window closes), so one job stays
committed `sending` while the agent's lane thread waits to write the rest of its label; the test
sees it so from outside (the agent's wave API), kills the agent with SIGKILL, lets the printer
read again and restarts the agent. Why a wave and the printer's TCP shape: see
tests/e2e/stalling_printer.py.

Afterwards the job is `unknown`, the cloud has its `job_unknown` and `exception_raised` once,
the printer printed that label at most once (never a copy sent by the agent on its own), a
rescan of the order prints nothing, a second run of the wave skips it, and the next order packs
and prints as usual.
"""

from __future__ import annotations

import collections
import re
from typing import Any

import httpx
import pytest

from bench.demo_data import demo_orders
from bench.provision import ingest_orders, provision
from bench.stack import Stack, running_stack, wait_for
from tests.e2e.stalling_printer import WAVE_ORDERS, kill_agent_while_sending, start_small_printer

_REF = re.compile(r"KS-\d{4}")

pytestmark = pytest.mark.timeout(300)


def _ledger(stack: Stack) -> collections.Counter[str]:
    """How many times the printer printed each order's label."""
    labels = stack.control("printer", "GET", "/labels")
    return collections.Counter(
        match.group(0) for label in labels for match in [_REF.search("\n".join(label["fields"]))] if match
    )


def _cloud_kinds(stack: Stack, order_ref: str) -> collections.Counter[str]:
    order = stack.admin_call("GET", f"/api/v1/orders/{order_ref}")
    return collections.Counter(event["kind"] for event in order["events"])


def _wave_entry(client: httpx.Client, wave_id: int, order_ref: str) -> dict[str, Any]:
    """The order's entry in the agent's wave report: its job id, the job's status and message."""
    orders = client.get(f"/api/v1/waves/{wave_id}").json()["orders"]
    return dict(next(order for order in orders if order["order_ref"] == order_ref))


def _put_parcel(stack: Stack, client: httpx.Client, grams: int) -> None:
    stack.control("scale", "POST", "/weight", {"grams": grams, "stable": True})

    def ready() -> bool:
        scale = client.get("/api/v1/status").json()["stations"][0]["scale"]
        return bool(scale["weight_g"] == grams and scale["parcel_ready"])

    wait_for(ready, timeout=10, what=f"a new {grams} g parcel at the station")


def _pack(client: httpx.Client, ref: str, request_id: str) -> dict[str, Any]:
    response = client.post("/api/v1/pack", json={"order_ref": ref, "station": "S1", "request_id": request_id})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_kill_while_a_label_is_sending_leaves_it_unknown_with_an_exception_and_never_prints_it_twice(
    tmp_path,
) -> None:
    with running_stack(tmp_path) as stack:
        stack.start_cloud()
        start_small_printer(stack, serial="ZD421-STALL")
        stack.start_scale()
        provision(stack, order_count=10, order_prefix="KS")
        wave_orders = demo_orders(10 + WAVE_ORDERS, prefix="KS")[10:]
        ingest_orders(stack, wave_orders)
        wave_refs = [order["order_ref"] for order in wave_orders]
        stack.enroll_agent("WH1")
        stack.start_agent()
        client = stack.agent_client()
        try:
            wait_for(
                lambda: client.get(f"/api/v1/orders/{wave_refs[-1]}").status_code == 200,
                timeout=60,
                what="the orders to reach the agent",
            )
            # A scan prints as usual first: the connection to the printer is open and warm.
            _put_parcel(stack, client, 1234)
            first = _pack(client, "KS-0001", "scan-1")
            assert first["status"] == "sent"
            confirmed = client.get(f"/api/v1/jobs/{first['job_id']}", params={"wait_s": 10}).json()
            assert confirmed["status"] == "printed", confirmed

            wave = stack.admin_call(
                "POST", "/api/v1/waves", {"warehouse": "WH1", "station": "S1", "order_refs": wave_refs}
            )
            assert wave["errors"] == []
            stuck = kill_agent_while_sending(stack, client, wave["id"], "wave-into-a-stall")
            client.close()

            stack.start_agent()
            client = stack.agent_client()
            job = client.get(f"/api/v1/jobs/{stuck.job_id}").json()
            assert (job["status"], job["order_ref"]) == ("unknown", stuck.order_ref)
            assert "agent stopped while this label was being sent" in job["message"]

            # The cloud hears of it once: the job is unknown and a person has an exception to settle.
            wait_for(
                lambda: client.get("/api/v1/status").json()["outbox_depth"] == 0,
                timeout=60,
                what="the outbox to drain",
            )
            kinds = _cloud_kinds(stack, stuck.order_ref)
            assert (kinds["job_unknown"], kinds["exception_raised"]) == (1, 1), kinds
            assert (kinds["order_packed"], kinds["label_printed"]) == (0, 0), kinds
            exceptions = stack.admin_call("GET", "/api/v1/exceptions")["exceptions"]
            assert [e for e in exceptions if e["order_ref"] == stuck.order_ref], exceptions

            # The printer: that label at most once (it was cut off mid-label, so normally never), no
            # order twice, the labels it had confirmed before the kill once each. The labels only sent
            # (in the TCP buffers, unconfirmed) print at most once: the printer prints them when it
            # reads again, unless the dead agent's kernel reset the connection and dropped them, which
            # is why the agent never called them printed.
            # (The stall comes at the wave's first label, so the printer confirms none of the wave
            # before the kill: the labels behind it are all `sent`, in the TCP buffers.)
            assert stuck.sent_before, "no label of the wave went out before the kill"
            ledger = _ledger(stack)
            assert [ref for ref in stuck.printed_before if ledger[ref] != 1] == []
            assert ledger[stuck.order_ref] <= 1
            assert [ref for ref, count in ledger.items() if count > 1] == []
            # After the restart a label only sent is `sent` with what to check (or `printed`, when the
            # printer confirmed it just before the kill); the agent never sends it again by itself.
            for ref in stuck.sent_before:
                job = _wave_entry(client, wave["id"], ref)
                assert job["job_status"] in ("sent", "printed"), job
                if job["job_status"] == "sent":
                    assert "check that the label came out" in job["message"], job

            # A rescan answers with the unknown job and prints nothing.
            printed_so_far = ledger.total()
            _put_parcel(stack, client, 1334)
            again = _pack(client, stuck.order_ref, "rescan-of-the-stuck-order")
            assert (again["status"], again["job_id"]) == ("already_packed", stuck.job_id)
            # Printing the wave again skips it too; the orders after it print, once each.
            rerun = client.post(
                f"/api/v1/waves/{wave['id']}/print", json={"station": "S1", "request_id": "wave-again"}
            ).json()
            skipped = {entry["order_ref"]: entry["code"] for entry in rerun["skipped"]}
            assert skipped[stuck.order_ref] == "already_labelled"
            assert (rerun["failed"], rerun["held"]) == ([], 0)
            assert rerun["printed"] == WAVE_ORDERS - len(stuck.printed_before) - len(stuck.sent_before) - 1
            ledger = wait_for(
                lambda: (seen := _ledger(stack)).total() == printed_so_far + rerun["printed"] and seen,
                timeout=30,
                what="the printer to print the rest of the wave",
            )
            assert ledger[stuck.order_ref] <= 1
            assert [ref for ref, count in ledger.items() if count > 1] == []

            # The next scanned order packs and prints as usual.
            answer = _pack(client, "KS-0002", "scan-2")
            assert answer["status"] == "sent"
            wait_for(lambda: _ledger(stack)["KS-0002"] == 1, timeout=10, what="KS-0002's label")
        finally:
            client.close()
