"""A wave end to end on real processes: released in the cloud, printed in one run at the station.

The cloud releases a wave of orders to station S1 in a chosen order; the agent receives it over
the real gRPC sync; "Print wave" on the agent's API sends every label to the mock printer in that
order, exactly once; the edge events bring the orders to `labelled` in the cloud, whose wave shows
its progress. All ports are ephemeral and every file lives in the test's tmp dir.
"""

from __future__ import annotations

import re
from typing import Any

from bench.stack import Stack, wait_for
from tests.e2e.conftest import Station

CHOSEN = ["E2E-0017", "E2E-0003", "E2E-0042", "E2E-0009", "E2E-0031", "E2E-0024"]


def _printed_refs(station: Station) -> list[str]:
    refs = []
    for label in station.labels():
        found = re.findall(r"E2E-\d{4}", "\n".join(label["fields"]))
        assert found, label["fields"]
        refs.append(found[0])
    return refs


def _wave_at_agent(station: Station, wave_id: int) -> dict[str, Any]:
    def synced() -> dict[str, Any] | None:
        response = station.http.get(f"/api/v1/waves/{wave_id}")
        return dict(response.json()) if response.status_code == 200 else None

    return dict(wait_for(synced, timeout=30, what=f"wave {wave_id} to reach the agent"))


def _cloud_wave(stack: Stack, wave_id: int) -> dict[str, Any]:
    return dict(stack.admin_call("GET", f"/api/v1/waves/{wave_id}"))


def test_a_released_wave_prints_in_the_chosen_order_once_and_the_cloud_sees_it_labelled(
    stack: Stack, station: Station
) -> None:
    # One order is cancelled after the wave is released: the agent must skip it with a warning.
    wave = stack.admin_call(
        "POST", "/api/v1/waves", {"warehouse": "WH1", "station": "S1", "order_refs": [*CHOSEN, "E2E-0050"]}
    )
    assert wave["errors"] == []
    stack.admin_call("POST", "/api/v1/orders/E2E-0050/cancel", {"reason": "customer changed their mind"})
    wait_for(
        lambda: station.http.get("/api/v1/orders/E2E-0050").json()["state"] == "cancelled",
        timeout=30,
        what="the cancel to reach the agent",
    )
    listed = _wave_at_agent(station, wave["id"])
    assert (listed["station"], listed["total"], listed["printed"]) == ("S1", 7, 0)
    assert [o["order_ref"] for o in listed["orders"]] == [*CHOSEN, "E2E-0050"]
    assert _cloud_wave(stack, wave["id"])["state"] == "released"

    response = station.http.post(
        f"/api/v1/waves/{wave['id']}/print", json={"station": "S1", "request_id": "wave-print-1"}
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["printed"], report["held"], report["failed"]) == (6, 0, [])
    assert [(s["order_ref"], s["code"]) for s in report["skipped"]] == [("E2E-0050", "order_cancelled")]
    assert _printed_refs(station) == CHOSEN

    # A retried request and a second press print nothing more.
    retried = station.http.post(
        f"/api/v1/waves/{wave['id']}/print", json={"station": "S1", "request_id": "wave-print-1"}
    )
    assert retried.json() == report
    second = station.http.post(
        f"/api/v1/waves/{wave['id']}/print", json={"station": "S1", "request_id": "wave-print-2"}
    ).json()
    assert second["printed"] == 0
    assert {s["code"] for s in second["skipped"]} == {"already_labelled", "order_cancelled"}
    assert _printed_refs(station) == CHOSEN

    def cloud_printed() -> dict[str, Any] | None:
        seen = _cloud_wave(stack, wave["id"])
        return seen if seen["state"] == "printed" else None

    seen = wait_for(cloud_printed, timeout=30, what="the cloud to see the wave printed")
    assert seen["progress"] == {"orders": 7, "labelled": 6, "held": 0, "cancelled": 1, "waiting": 0}
    assert [(o["order_ref"], o["state"], o["label"]) for o in seen["orders"]] == [
        *((ref, "labelled", "printed") for ref in CHOSEN),
        ("E2E-0050", "cancelled", None),
    ]
    order = stack.admin_call("GET", f"/api/v1/orders/{CHOSEN[0]}")
    packed = next(event for event in order["events"] if event["kind"] == "order_packed")
    assert packed["body"]["weight_source"] == "expected"
    assert packed["body"]["wave_id"] == wave["id"]
    assert packed["body"]["wave_position"] == 1
    assert "weight_captured" not in {event["kind"] for event in order["events"]}
    # No exception was opened: the expected weight is within any tolerance of itself.
    assert stack.admin_call("GET", "/api/v1/exceptions")["exceptions"] == []


def test_a_wave_for_a_printer_out_of_paper_is_held_and_prints_in_order_once_it_is_loaded(
    stack: Stack, station: Station
) -> None:
    refs = CHOSEN[:4]
    wave = stack.admin_call(
        "POST", "/api/v1/waves", {"warehouse": "WH1", "station": "S1", "order_refs": refs}
    )
    _wave_at_agent(station, wave["id"])
    stack.control("printer", "POST", "/fault", {"fault": "paper_out"})
    wait_for(
        lambda: station.status()["stations"][0]["printers"][0]["state"] == "fault",
        timeout=20,
        what="the agent to see the printer out of paper",
    )

    report = station.http.post(
        f"/api/v1/waves/{wave['id']}/print", json={"station": "S1", "request_id": "held-wave"}
    ).json()

    assert (report["printed"], report["held"]) == (0, 4)
    assert station.labels() == []
    progress = station.http.get(f"/api/v1/waves/{wave['id']}").json()
    assert (progress["printed"], progress["held"]) == (0, 4)
    stack.control("printer", "POST", "/fault", {"fault": "none"})
    wait_for(lambda: len(station.labels()) == 4, timeout=30, what="the held labels to print")
    assert _printed_refs(station) == refs
    wait_for(
        lambda: _cloud_wave(stack, wave["id"])["state"] == "printed",
        timeout=30,
        what="the cloud to see the held labels printed",
    )
