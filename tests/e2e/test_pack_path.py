"""The whole pack path on real parts: cloud -> agent cache -> scale -> label at the printer -> cloud.

The tests that only pack share one stack (`packing`): each packs its own orders on a new parcel
and counts the labels printed during the test. The tests that stop the cloud or the agent start
their own.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench.demo_data import demo_orders
from bench.stack import Stack, wait_for
from tests.e2e.conftest import Station


def _cloud_order(stack: Stack, order_ref: str) -> dict[str, Any]:
    return dict(stack.admin_call("GET", f"/api/v1/orders/{order_ref}"))


def _event_kinds(order: dict[str, Any]) -> list[str]:
    return sorted(event["kind"] for event in order["events"])


@pytest.fixture
def packing(shared_station: Station) -> Station:
    """The module's shared station with a new parcel on the scale (a weight serves one parcel)."""
    shared_station.put_parcel()
    return shared_station


def test_an_order_goes_from_the_cloud_to_one_label_and_back(packing: Station) -> None:
    station, stack = packing, packing.stack
    before = len(station.labels())
    order = demo_orders(1, prefix="HOPPER")[0]
    order["ship_to"].update(
        name="Grace Hopper", street="12 Navy Yard Road", city="Arlington", postal_code="22202"
    )
    answer = stack.admin_call("POST", "/api/v1/orders", {"orders": [order]})
    assert answer["accepted"] == ["HOPPER-0001"]
    assert answer["errors"] == []
    station.wait_synced("HOPPER-0001")
    station.set_weight(2345)

    response = station.pack("HOPPER-0001", "req-hopper")

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "sent"  # its bytes went out; the printer confirms it just after
    assert job["order_ref"] == "HOPPER-0001"
    assert job["weight_g"] == 2345
    assert job["template"] == "shipping-4x6"
    labels = station.labels()[before:]
    assert len(labels) == 1
    fields = "\n".join(labels[0]["fields"])
    assert "Grace Hopper" in fields
    assert "12 Navy Yard Road" in fields
    assert "HOPPER-0001" in fields
    assert re.search(r"\b2\.35\b|\b2345\b", fields), f"weight 2345 g not on the label: {fields}"

    def cloud_has_events() -> dict[str, Any] | None:
        seen = _cloud_order(stack, "HOPPER-0001")
        return seen if {"order_packed", "label_printed"} <= set(_event_kinds(seen)) else None

    seen = wait_for(cloud_has_events, timeout=20, what="the pack events to reach the cloud")
    assert seen["state"] in {"packed", "labelled"}
    packed = next(event for event in seen["events"] if event["kind"] == "order_packed")
    assert packed["station"] == "S1"
    assert packed["body"]["weight_g"] == 2345
    assert packed["body"]["job_id"] == job["job_id"]


def test_the_same_request_prints_one_label_and_a_second_scan_prints_none(packing: Station) -> None:
    station = packing
    before = len(station.labels())
    first = station.pack("E2E-0001", "double-click")
    again = station.pack("E2E-0001", "double-click")
    rescan = station.pack("E2E-0001", "second-scan")

    assert first.status_code == again.status_code == rescan.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.json()["status"] in ("sent", "printed")  # the same job, as it is now
    assert rescan.json()["status"] == "already_packed"
    assert rescan.json()["job_id"] == first.json()["job_id"]
    assert len(station.labels()) == before + 1


def test_reprint_is_explicit_and_needs_a_reason(packing: Station) -> None:
    station = packing
    before = len(station.labels())
    job = station.pack("E2E-0002", "r-1").json()

    refused = station.http.post(f"/api/v1/jobs/{job['job_id']}/reprint", json={"reason": ""})
    reprinted = station.http.post(f"/api/v1/jobs/{job['job_id']}/reprint", json={"reason": "label torn"})

    assert refused.status_code == 422
    assert refused.json()["error"]["code"]
    assert reprinted.status_code == 200, reprinted.text
    assert reprinted.json()["job_id"] != job["job_id"]
    assert len(station.labels()) == before + 2


def test_packing_goes_on_offline_and_every_event_reaches_the_cloud_once(
    stack: Stack, station: Station
) -> None:
    stack.cloud.stop()
    refs = [f"E2E-{n:04d}" for n in range(1, 51)]

    for n, ref in enumerate(refs):
        station.put_parcel()  # a weight serves one parcel
        response = station.pack(ref, f"offline-{n}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "sent"

    assert len(station.labels()) == 50
    status = station.status()
    assert status["online"] is False
    assert status["outbox_depth"] >= 50

    stack.start_cloud(http="127.0.0.1:0", grpc=stack.cloud.ready["grpc"])

    def all_delivered() -> bool:
        return station.status()["outbox_depth"] == 0

    wait_for(all_delivered, timeout=60, what="the outbox to drain after the cloud came back")
    for ref in refs:
        kinds = _event_kinds(_cloud_order(stack, ref))
        assert kinds.count("order_packed") == 1, (ref, kinds)
        assert kinds.count("label_printed") == 1, (ref, kinds)
        assert kinds.count("weight_captured") == 1, (ref, kinds)


def test_the_agent_resumes_from_its_revision_after_a_restart(stack: Stack, station: Station) -> None:
    revision_before = wait_for(
        lambda: (r := station.status()["revision"]) == stack.admin_call("GET", "/healthz")["revision"] and r,
        timeout=20,
        what="the agent to catch up with the cloud",
    )
    station.stack.processes["agent"].stop()
    late = demo_orders(1, prefix="LATE")[0]
    stack.admin_call("POST", "/api/v1/orders", {"orders": [late]})
    head = stack.admin_call("GET", "/healthz")["revision"]

    station.restart_agent()
    station.wait_synced("LATE-0001")

    metrics = station.http.get("/metrics").text
    applied = _metric(metrics, "dockside_sync_changes_applied_total")
    snapshots = _metric(metrics, "dockside_sync_snapshots_total")
    assert snapshots == 0, "a resume from a stored revision must not fetch a snapshot"
    assert applied == head - revision_before, "only the changes made while the agent was away are applied"
    assert station.pack("LATE-0001", "late-1").json()["status"] == "sent"


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exported:\n{text[:2000]}")
