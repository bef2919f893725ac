"""The item check through the agent's real HTTP API, a mock ZPL printer on TCP and a mock scale on a pty:
right items, wrong items, extra units, GS1 scans, hostile scans, a reload and a restart, and the
pack's gate while the warehouse checks items (and none while it does not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    SHIP_FROM,
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

MUG = "4006381333931"  # EAN-13
PEN_UPC = "036000291452"  # UPC-A, sent by the OMS as its EAN-13 below
LINES = [
    {"sku": "MUG-BLUE", "qty": 2, "barcode": MUG, "description": "Blue mug"},
    {"sku": "PEN-RED", "qty": 1, "barcode": "0" + PEN_UPC, "description": "Red pen"},
    {"sku": "Sticker-Pack", "qty": 1},
]
BASE = "/api/v1/stations/S1/item-check"


def _warehouse(item_check: bool) -> dict[str, Any]:
    return {"code": "WH1", "name": "Warehouse 1", "ship_from": SHIP_FROM, "item_check": item_check}


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0001").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def cloud(printer: MockPrinter, scale: MockScale) -> MemoryTransport:
    memory = MemoryTransport()
    publish_warehouse(memory)
    memory.publish("warehouse", "WH1", _warehouse(True))
    assert scale.pty_path
    memory.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for n in range(1, 4):
        memory.publish("order", f"IC-{n}", order_body(f"IC-{n}", lines=LINES))
    return memory


def _start(data_dir: Path, cloud: MemoryTransport) -> RunningAgent:
    running = RunningAgent(data_dir, cloud).start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = _start(data_dir, cloud)
    try:
        yield running
    finally:
        running.stop()


def _http(agent: RunningAgent) -> httpx.Client:
    assert agent.http is not None
    return agent.http


def _scan(agent: RunningAgent, order_ref: str, scan: str) -> httpx.Response:
    return _http(agent).post(f"{BASE}/{order_ref}/scan", json={"scan": scan})


def _counts(answer: dict[str, Any]) -> list[int]:
    return [line["scanned"] for line in answer["lines"]]


# -- the lines and the right items -----------------------------------------------------------------


def test_the_station_reads_the_orders_lines_and_the_right_items_complete_it(agent: RunningAgent) -> None:
    start = _http(agent).get(f"{BASE}/IC-1")
    assert start.status_code == 200, start.text
    answer = start.json()
    assert (answer["required"], answer["complete"], answer["units"], answer["units_scanned"]) == (
        True,
        False,
        4,
        0,
    )
    assert answer["lines"][0] == {
        "line": 1,
        "sku": "MUG-BLUE",
        "barcode": MUG,
        "description": "Blue mug",
        "quantity": 2,
        "scanned": 0,
    }

    first = _scan(agent, "IC-1", MUG).json()
    assert (_counts(first), first["complete"]) == ([1, 0, 0], False)
    # A UPC-A scan matches the OMS's EAN-13 of it; a SKU matches without case.
    assert _counts(_scan(agent, "IC-1", PEN_UPC).json()) == [1, 1, 0]
    assert _counts(_scan(agent, "IC-1", "sticker-pack").json()) == [1, 1, 1]
    last = _scan(agent, "IC-1", "  MUG-BLUE \t").json()  # the line's SKU, with the scanner's blanks
    assert (_counts(last), last["complete"], last["units_scanned"]) == ([2, 1, 1], True, 4)


def test_a_gs1_code_names_its_item_by_its_gtin(agent: RunningAgent) -> None:
    gtin14 = "0" + MUG
    scans = [
        f"]C101{gtin14}10LOT-7\x1d21SERIAL1",  # GS1-128 with its symbology identifier
        f"(01){gtin14}(17)271231",  # the bracketed form a person types
    ]
    for n, scan in enumerate(scans, 1):
        response = _scan(agent, "IC-1", scan)
        assert response.status_code == 200, response.text
        assert _counts(response.json()) == [n, 0, 0]
    # GS1-128 of the GTIN alone, from a scanner that sends no identifier: 01 + GTIN-14.
    response = _scan(agent, "IC-2", f"01{gtin14}")
    assert _counts(response.json()) == [1, 0, 0]

    for broken in (f"]C101{gtin14[:-1]}5", "]C10012345678", "(400)PO-1", "]C1400PO-1"):
        refused = _scan(agent, "IC-3", broken)
        assert refused.status_code == 422, (broken, refused.text)
        error = error_of(refused)
        assert error["code"] == "item_scan_unreadable"
        assert "GTIN (AI 01)" in error["message"]
    assert _counts(_http(agent).get(f"{BASE}/IC-3").json()) == [0, 0, 0]


# -- refused loudly and logged ------------------------------------------------------------------


def test_a_wrong_item_and_an_extra_unit_are_refused_counted_nowhere_and_logged(agent: RunningAgent) -> None:
    wrong = _scan(agent, "IC-1", "96385074")  # a GTIN-8 of something else
    assert wrong.status_code == 409
    error = error_of(wrong)
    assert error["code"] == "wrong_item"
    assert "96385074 is not in order IC-1" in error["message"]
    assert "Put it aside" in error["message"]

    _scan(agent, "IC-1", PEN_UPC)
    extra = _scan(agent, "IC-1", "0" + PEN_UPC)
    assert extra.status_code == 409
    error = error_of(extra)
    assert error["code"] == "extra_unit"
    assert "has 1 of PEN-RED" in error["message"]
    assert "Take this unit out" in error["message"]
    assert _counts(_http(agent).get(f"{BASE}/IC-1").json()) == [0, 1, 0]

    wait_until(lambda: len(agent.events("item_check_refused")) == 2, what="both refusals at the cloud")
    bodies = sorted((json.loads(event.body) for event in agent.events("item_check_refused")), key=str)
    assert {(b["reason"], b["scan"], b["sku"]) for b in bodies} == {
        ("wrong_item", "96385074", None),
        ("extra_unit", "0" + PEN_UPC, "PEN-RED"),
    }
    assert all(body["packer"] is None for body in bodies)
    assert {(event.order_ref, event.station) for event in agent.events("item_check_refused")} == {
        ("IC-1", "S1")
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"scan": "4" * 129}, 422, "item_scan_unreadable"),
        ({"scan": "MUG\x00BLUE"}, 422, "item_scan_unreadable"),
        ({"scan": "MUG\u2028X"}, 422, "item_scan_unreadable"),
        ({"scan": "MUG\tBLUE"}, 422, "item_scan_unreadable"),
        ({"scan": "\x1d"}, 422, "item_scan_unreadable"),
        ({"scan": "   "}, 422, "item_scan_unreadable"),
        ({"scan": "x" * 2_000}, 422, "invalid_input"),
        ({"scan": "x" * 100_000}, 413, "body_too_large"),
        ({"scan": ""}, 422, "invalid_input"),
        ({"scan": 4006381333931}, 422, "invalid_input"),
        ({"scan": MUG, "qty": 5}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
    ],
)
def test_hostile_scans_are_refused_before_any_count(
    agent: RunningAgent, body: dict[str, Any], status: int, code: str
) -> None:
    response = _http(agent).post(f"{BASE}/IC-1/scan", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert "x" * 200 not in error["message"]
    assert _counts(_http(agent).get(f"{BASE}/IC-1").json()) == [0, 0, 0]
    assert agent.events("item_check_refused") == []


def test_unknown_orders_stations_and_unreadable_references_are_refused(agent: RunningAgent) -> None:
    http = _http(agent)
    assert error_of(http.get(f"{BASE}/NOPE-1"))["code"] == "order_not_found"
    assert error_of(http.post(f"{BASE}/NOPE-1/scan", json={"scan": MUG}))["code"] == "order_not_found"
    assert error_of(http.get("/api/v1/stations/S9/item-check/IC-1"))["code"] == "station_not_found"
    assert error_of(http.get(f"/api/v1/stations/{'S' * 500}/item-check"))["code"] == "station_not_found"
    assert error_of(http.get(f"{BASE}/{'A' * 5000}"))["code"] == "scan_unreadable"
    assert error_of(http.get(f"{BASE}/bad%20ref"))["code"] == "scan_unreadable"
    no_json = http.post(f"{BASE}/IC-1/scan", content=b"{", headers={"content-type": "application/json"})
    assert error_of(no_json)["code"] == "invalid_json"
    # Without the local credential, nothing is read or counted.
    assert httpx.get(f"http://{agent.address}{BASE}/IC-1").status_code == 401


# -- kept across a reload and a restart -------------------------------------------------------------


def test_progress_is_kept_across_a_reload_and_a_restart_and_can_be_set_aside(
    data_dir: Path, cloud: MemoryTransport
) -> None:
    agent = _start(data_dir, cloud)
    try:
        assert _http(agent).get(BASE).json() == {"station": "S1", "required": True, "check": None}
        _scan(agent, "IC-1", MUG)
        _scan(agent, "IC-1", PEN_UPC)
        # A reloaded page asks for the station's check and resumes it.
        current = _http(agent).get(BASE).json()
        assert current["check"]["order_ref"] == "IC-1"
        assert _counts(current["check"]) == [1, 1, 0]
    finally:
        agent.stop()
    agent = _start(data_dir, cloud)
    try:
        assert _counts(_http(agent).get(f"{BASE}/IC-1").json()) == [1, 1, 0]
        assert _counts(_http(agent).get(BASE).json()["check"]) == [1, 1, 0]
        # Esc sets it aside: the count stays, a reload no longer resumes it.
        assert _http(agent).delete(BASE).json()["check"] is None
        assert _http(agent).get(BASE).json()["check"] is None
        assert _counts(_http(agent).get(f"{BASE}/IC-1").json()) == [1, 1, 0]
        # Start over: the packer emptied the parcel.
        assert _counts(_http(agent).post(f"{BASE}/IC-1/reset").json()) == [0, 0, 0]
    finally:
        agent.stop()


def test_lines_changed_in_the_cloud_start_the_count_again(
    agent: RunningAgent, cloud: MemoryTransport
) -> None:
    _scan(agent, "IC-1", MUG)
    cloud.publish("order", "IC-1", order_body("IC-1", lines=[{"sku": "MUG-BLUE", "qty": 3, "barcode": MUG}]))
    agent.wait_synced()
    answer = _http(agent).get(f"{BASE}/IC-1").json()
    assert (_counts(answer), answer["restarted"]) == ([0], True)
    assert _counts(_scan(agent, "IC-1", MUG).json()) == [1]


# -- the pack's gate -------------------------------------------------------------------------------------


def test_the_pack_is_refused_until_every_item_is_scanned(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    put_parcel(agent, scale, 1500)
    _scan(agent, "IC-1", MUG)
    refused = agent.pack("IC-1", "req-1")
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "items_not_checked"
    assert "3 unit(s) still to scan" in error["message"]
    assert "scan each item" in error["message"]
    assert agent.status()["stations"][0]["scale"]["parcel_ready"]  # the weight is not spent

    _scan_all_after_first(agent)
    packed = agent.pack("IC-1", "req-2")
    assert packed.status_code == 200, packed.text
    assert packed.json()["weight_g"] == 1500
    assert len(printer.wait_for_labels(1)) == 1
    # Packed: the station has no check left to resume.
    assert _http(agent).get(BASE).json()["check"] is None


def _scan_all_after_first(agent: RunningAgent) -> None:
    for scan in (MUG, PEN_UPC, "STICKER-PACK"):
        assert _scan(agent, "IC-1", scan).status_code == 200


def test_without_the_warehouse_setting_nothing_is_checked(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    cloud.publish("warehouse", "WH1", _warehouse(False))
    agent.wait_synced()
    assert _http(agent).get(BASE).json()["required"] is False
    assert _http(agent).get(f"{BASE}/IC-2").json()["required"] is False
    put_parcel(agent, scale, 900)
    packed = agent.pack("IC-2", "req-1")
    assert packed.status_code == 200, packed.text
    assert len(printer.wait_for_labels(1)) == 1


def test_a_refusal_names_the_packer_signed_in_at_the_station(
    agent: RunningAgent, cloud: MemoryTransport
) -> None:
    cloud.publish("packer", "7", {"id": 7, "name": "Ana", "badge": "B-0007", "pin_hash": None})
    agent.wait_synced()
    signed = _http(agent).post("/api/v1/stations/S1/packer", json={"badge": "B-0007"})
    assert signed.status_code == 200, signed.text

    assert _scan(agent, "IC-1", "UNKNOWN-THING").status_code == 409
    wait_until(lambda: len(agent.events("item_check_refused")) == 1, what="the refusal at the cloud")
    [event] = agent.events("item_check_refused")
    assert json.loads(event.body) == {
        "reason": "wrong_item",
        "scan": "UNKNOWN-THING",
        "sku": None,
        "packer": 7,
    }
