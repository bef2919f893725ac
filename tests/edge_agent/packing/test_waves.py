"""Waves at the station through the agent's real API: one run, in the chosen order, each label once.

A real mock Zebra on TCP takes the labels; the cloud is the in-memory transport, so a test can
publish the wave and read the events the agent delivered. The agent polls its printers every
0.1 s here, so a test waits for conditions, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import PrinterError
from dockside.sync import SyncChange
from edge_agent.store.cache import Cache, UnusableChange
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    station_body,
)
from tests.edge_agent.waiting import wait_until

POLLING = dataclasses.replace(FAST, printer_check_interval_s=0.1)
CHOSEN = ["W-0007", "W-0002", "W-0005", "W-0001", "W-0004", "W-0003", "W-0006"]


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZWAVE0001").start()
    try:
        yield mock
    finally:
        mock.stop()


def _station(code: str, printer: MockPrinter) -> dict[str, Any]:
    # A wave is printed before picking: nothing is weighed, the station needs no scale.
    return {**station_body(code, printer, ""), "scale": None}


def _wave(cloud: MemoryTransport, wave_id: int, refs: list[str], station: str = "S1") -> None:
    cloud.publish(
        "wave",
        str(wave_id),
        {
            "id": wave_id,
            "warehouse": "WH1",
            "station": station,
            "order_refs": refs,
            "created_by": "planner",
            "created_at": "2026-11-22T07:00:00+00:00",
        },
    )


@pytest.fixture
def cloud(printer: MockPrinter) -> MemoryTransport:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    cloud.publish("station", "S1", _station("S1", printer))
    cloud.publish("station", "S2", _station("S2", printer) | {"printers": []})
    for n in range(1, 8):
        # Different expected weights, so each label shows its own order's weight.
        cloud.publish(
            "order",
            f"W-{n:04d}",
            {**order_body(f"W-{n:04d}", expected_weight_g=1000 + 100 * n), "state": "released"},
        )
    return cloud


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = RunningAgent(data_dir, cloud, POLLING).start()
    try:
        running.wait_synced()
        wait_until(lambda: _printer_state(running) == "ready", what="the printer to be ready")
        yield running
    finally:
        running.stop()


def _printer_state(agent: RunningAgent) -> str:
    stations = {s["code"]: s for s in agent.status()["stations"]}
    return str(stations["S1"]["printers"][0]["state"])


def _printed_refs(printer: MockPrinter) -> list[str]:
    """The order reference on each label the printer printed, in printing order."""
    refs = []
    for label in printer.labels():
        found = re.findall(r"W-\d{4}", "\n".join(label["fields"]))
        assert found, label["fields"]
        refs.append(found[0])
    return refs


def _print(agent: RunningAgent, wave_id: Any, request_id: str, station: str = "S1") -> Any:
    assert agent.http is not None
    return agent.http.post(
        f"/api/v1/waves/{wave_id}/print", json={"station": station, "request_id": request_id}
    )


def _events(agent: RunningAgent, kind: str) -> dict[str, dict[str, Any]]:
    return {event.order_ref: json.loads(event.body) for event in agent.events(kind)}


def test_a_wave_prints_every_label_in_the_chosen_order_exactly_once(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    assert agent.http is not None
    # W-0004 was scanned and packed before the wave; W-0006 was cancelled; W-0003 has no weight.
    cloud.publish("order", "W-0006", {**order_body("W-0006"), "state": "cancelled"})
    cloud.publish("order", "W-0003", {**order_body("W-0003"), "expected_weight_g": None, "state": "released"})
    _wave(cloud, 12, CHOSEN)
    agent.wait_synced()
    # W-0004 got its label earlier, in a wave of its own.
    _wave(cloud, 11, ["W-0004"])
    agent.wait_synced()
    assert _print(agent, 11, "wave-11-a").json()["printed"] == 1
    printer.wait_for_labels(1)

    listed = agent.http.get("/api/v1/waves", params={"station": "S1"}).json()["waves"]
    assert [(w["wave_id"], w["total"], w["printed"], w["running"]) for w in listed] == [
        (12, 7, 1, False),  # W-0004 already has its label
        (11, 1, 1, False),
    ]
    assert agent.http.get("/api/v1/waves", params={"station": "S2"}).json() == {"waves": []}

    response = _print(agent, 12, "wave-12-a")

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["status"] == "done"
    assert (report["total"], report["printed"], report["held"], report["failed"]) == (7, 4, 0, [])
    assert [(s["order_ref"], s["code"]) for s in report["skipped"]] == [
        ("W-0004", "already_labelled"),
        ("W-0003", "no_expected_weight"),
        ("W-0006", "order_cancelled"),
    ]
    assert "was cancelled" in report["skipped"][2]["message"]
    printed_order = ["W-0007", "W-0002", "W-0005", "W-0001"]
    assert [j["order_ref"] for j in report["jobs"]] == printed_order
    printer.wait_for_labels(5)
    assert _printed_refs(printer) == ["W-0004", *printed_order]
    # Each label carries its order's expected weight, and the job says where it came from.
    job = agent.http.get(f"/api/v1/jobs/{report['jobs'][0]['job_id']}").json()
    assert (job["weight_g"], job["status"], job["station"]) == (1700, "printed", "S1")
    assert "1.70 kg" in "\n".join(printer.labels()[1]["fields"])

    # The cloud hears: packed (expected weight, wave, position) and printed; nothing was weighed.
    wait_until(lambda: len(_events(agent, "label_printed")) == 5, what="the label events")
    packed = _events(agent, "order_packed")
    assert packed["W-0007"]["weight_source"] == "expected"
    assert (packed["W-0007"]["wave_id"], packed["W-0007"]["wave_position"]) == (12, 1)
    assert packed["W-0001"]["weight_g"] == 1100
    assert set(packed) == {"W-0004", *printed_order}
    assert agent.events("weight_captured") == []

    # A retried request answers the same run and prints nothing more; a new one prints nothing.
    again = _print(agent, 12, "wave-12-a")
    assert again.status_code == 200
    assert again.json() == report
    fresh = _print(agent, 12, "wave-12-b").json()
    assert (fresh["printed"], fresh["held"]) == (0, 0)
    assert {s["code"] for s in fresh["skipped"]} == {
        "already_labelled",
        "no_expected_weight",
        "order_cancelled",
    }
    assert len(printer.labels()) == 5
    progress = agent.http.get("/api/v1/waves/12").json()
    assert (progress["total"], progress["printed"], progress["skipped"], progress["waiting"]) == (7, 5, 2, 0)
    assert progress["to_print"] == 1  # W-0003 may print once it has an expected weight
    assert [o["status"] for o in progress["orders"]] == [
        "printed",
        "printed",
        "printed",
        "printed",
        "printed",
        "skipped",
        "skipped",
    ]
    # A scan of a wave order afterwards finds its label: already packed, never a second one.
    assert agent.pack("W-0002", "scan-2").json()["status"] == "already_packed"
    assert len(printer.labels()) == 5
    # Once the OMS sends W-0003's expected weight, the next Print wave prints that label alone.
    cloud.publish("order", "W-0003", {**order_body("W-0003", expected_weight_g=1300), "state": "released"})
    agent.wait_synced()
    assert _print(agent, 12, "wave-12-c").json()["printed"] == 1
    printer.wait_for_labels(6)
    assert _printed_refs(printer) == ["W-0004", *printed_order, "W-0003"]
    assert agent.http.get("/api/v1/waves/12").json()["to_print"] == 0


def test_a_printer_fault_mid_wave_holds_the_rest_in_order_until_it_is_fixed(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    _wave(cloud, 21, CHOSEN)
    agent.wait_synced()
    assert agent.agent is not None
    lane = agent.agent.floor.lane("S1-label")
    assert lane is not None
    send = lane.send
    sent = 0

    async def send_then_run_out_of_paper(data: bytes) -> None:
        # The printer runs out of paper right after the third label, and the agent's status poll
        # runs right then (the real poll, timed exactly, so the test is deterministic).
        nonlocal sent
        await send(data)
        sent += 1
        if sent == 3:
            printer.set_fault("paper_out")
            await lane.check()

    lane.send = send_then_run_out_of_paper  # type: ignore[method-assign]

    report = _print(agent, 21, "wave-21").json()

    assert (report["printed"], report["held"], report["skipped"]) == (3, 4, [])
    assert [(j["order_ref"], j["status"]) for j in report["jobs"]] == [
        ("W-0007", "sent"),
        ("W-0002", "sent"),
        ("W-0005", "sent"),
        ("W-0001", "held"),
        ("W-0004", "held"),
        ("W-0003", "held"),
        ("W-0006", "held"),
    ]
    assert "out of" in report["jobs"][3]["message"]
    assert agent.http is not None
    seen = agent.http.get("/api/v1/waves/21").json()  # what the page shows: n of N printed, held
    assert (seen["total"], seen["printed"], seen["held"], seen["waiting"]) == (7, 3, 4, 0)
    wait_until(lambda: len(_events(agent, "label_held")) == 4, what="the held events")

    printer.set_fault("none")

    printer.wait_for_labels(7, timeout_s=15)
    wait_until(lambda: agent.http.get("/api/v1/waves/21").json()["printed"] == 7, what="the held labels")
    assert _printed_refs(printer) == CHOSEN
    wait_until(lambda: len(_events(agent, "label_printed")) == 7, what="every label event")
    assert len(printer.wait_for_labels(7)) == 7


def test_a_label_that_breaks_mid_send_leaves_an_exception_and_no_order_packed(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    """As for a scanned pack: `order_packed` is committed with `printed`, never with `sending`."""
    _wave(cloud, 41, ["W-0002", "W-0005"])
    agent.wait_synced()
    assert agent.agent is not None
    lane = agent.agent.floor.lane("S1-label")
    assert lane is not None
    send = lane.send

    async def break_the_first_label(data: bytes) -> None:
        if b"W-0002" in data:
            raise PrinterError(
                "printer S1-label dropped the connection while receiving", code="printer_send_failed"
            )
        await send(data)

    lane.send = break_the_first_label  # type: ignore[method-assign]

    report = _print(agent, 41, "wave-41").json()

    assert [(f["order_ref"], f["code"]) for f in report["failed"]] == [("W-0002", "printer_send_failed")]
    assert "may have printed in part" in report["failed"][0]["message"]
    assert [(j["order_ref"], j["status"]) for j in report["jobs"]] == [("W-0005", "sent")]
    # The outbox sends in order: once the broken label's exception arrived, an `order_packed`
    # recorded before it would have arrived too.
    wait_until(lambda: "W-0002" in _events(agent, "exception_raised"), what="the exception for W-0002")
    wait_until(lambda: "W-0005" in _events(agent, "label_printed"), what="the printed event of W-0005")
    failed = _events(agent, "label_failed")["W-0002"]
    assert (failed["maybe_printed"], failed["wave_id"], failed["wave_position"]) == (True, 41, 1)
    packed = _events(agent, "order_packed")
    assert set(packed) == {"W-0005"}
    assert (packed["W-0005"]["wave_id"], packed["W-0005"]["wave_position"]) == (41, 2)
    printed = _events(agent, "label_printed")["W-0005"]
    assert printed["job_id"] == packed["W-0005"]["job_id"]
    assert _printed_refs(printer) == ["W-0005"]


def test_a_wave_waits_for_a_printer_that_is_off_and_prints_in_order_when_it_is_back(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    _wave(cloud, 31, CHOSEN[:4])
    agent.wait_synced()
    printer.set_fault("offline")
    wait_until(lambda: _printer_state(agent) == "offline", what="the poll to see the printer off")

    report = _print(agent, 31, "wave-31").json()

    assert (report["printed"], report["held"]) == (0, 4)
    assert printer.labels() == []
    printer.set_fault("none")
    printer.wait_for_labels(4, timeout_s=15)
    assert _printed_refs(printer) == CHOSEN[:4]


@pytest.mark.parametrize(
    "wave_id",
    ["999", "0", "-1", "1.5", "1e3", "9" * 40, "12%20OR%201=1", "%EF%BC%91%EF%BC%92", "x" * 300],
)
def test_unknown_and_hostile_wave_numbers_are_not_found(agent: RunningAgent, wave_id: str) -> None:
    assert agent.http is not None
    for response in (
        agent.http.get(f"/api/v1/waves/{wave_id}"),
        _print(agent, wave_id, f"r-{len(wave_id)}"),
    ):
        assert response.status_code == 404, response.text
        assert error_of(response)["code"] in ("wave_not_found", "not_found")


def test_bad_print_requests_are_refused_with_what_to_do(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    assert agent.http is not None
    _wave(cloud, 41, ["W-0001"], station="S2")
    _wave(cloud, 42, ["W-0002"])
    agent.wait_synced()

    other = _print(agent, 41, "r-1")
    assert other.status_code == 409
    assert error_of(other)["code"] == "wave_for_another_station"
    assert "print it at S2" in error_of(other)["message"]
    unknown_station = _print(agent, 42, "r-2", station="S9")
    assert unknown_station.status_code == 409  # the wave is S1's, whatever S9 is
    bodies: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "invalid_json"),
        ({"station": "S1"}, 422, "invalid_input"),
        ({"request_id": "x"}, 422, "invalid_input"),
        ({"station": "S1", "request_id": ""}, 422, "invalid_input"),
        ({"station": "S1", "request_id": "x" * 129}, 422, "invalid_input"),
        ({"station": "S1", "request_id": "has space"}, 422, "invalid_input"),
        ({"station": "S1\u0000", "request_id": "x"}, 422, "invalid_input"),
        ({"station": "S" * 33, "request_id": "x"}, 422, "invalid_input"),
        ({"station": "S1", "request_id": "x", "extra": 1}, 422, "invalid_input"),
        (["S1", "x"], 422, "invalid_input"),
        ({"station": "S1", "request_id": "y" * 70_000}, 413, "body_too_large"),
    ]
    for body, status, code in bodies:
        if isinstance(body, bytes):
            response = agent.http.post(
                "/api/v1/waves/42/print", content=body, headers={"content-type": "application/json"}
            )
        else:
            response = agent.http.post("/api/v1/waves/42/print", json=body)
        assert response.status_code == status, (body, response.text)
        assert error_of(response)["code"] == code
    assert printer.labels() == []

    assert _print(agent, 42, "r-3").json()["printed"] == 1
    reused = _print(agent, 41, "r-3", station="S2")
    assert reused.status_code == 409
    assert error_of(reused)["code"] == "request_id_reused"
    too_long = agent.http.get("/api/v1/waves", params={"station": "S" * 33})
    assert too_long.status_code == 422
    assert error_of(too_long)["code"] == "invalid_input"
    assert len(printer.wait_for_labels(1)) == 1  # the agent sent it; the mock parses it in its own thread


def _change(kind: str, key: str, body: Any, revision: int = 1) -> SyncChange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return SyncChange(revision, kind, key, raw)


def test_the_cache_keeps_waves_and_refuses_unusable_ones(store: Store) -> None:
    cache = Cache(store)
    good = {"id": 5, "station": "S1", "order_refs": ["A-1", "A-2"]}
    with store.atomic():
        cache.apply(_change("wave", "5", good))
    assert store.query("SELECT wave_id, station FROM waves") == [{"wave_id": 5, "station": "S1"}]
    hostile: list[tuple[str, Any]] = [
        ("0", good),
        ("5x", good),
        ("9" * 19, good),
        ("-5", good),
        ("6", {"order_refs": ["A-1"]}),
        ("6", {"station": "", "order_refs": ["A-1"]}),
        ("6", {"station": "S" * 33, "order_refs": ["A-1"]}),
        ("6", {"station": "S1", "order_refs": "A-1"}),
        ("6", {"station": "S1", "order_refs": [1, 2]}),
        ("6", {"station": "S1", "order_refs": ["A" * 65]}),
        ("6", {"station": "S1", "order_refs": [""]}),
        ("6", b"\xff\xfe"),
        ("6", ["S1"]),
    ]
    for key, body in hostile:
        with pytest.raises(UnusableChange), store.atomic():
            cache.apply(_change("wave", key, body))
    assert store.count("waves") == 1
    # A snapshot replaces the waves like every other cached entity.
    cache.begin_snapshot()
    cache.stage(_change("wave", "7", {"id": 7, "station": "S2", "order_refs": ["B-1"]}, revision=9))
    cache.stage(_change("wave", "8", {"station": "S2"}, revision=9))
    assert cache.finish_snapshot(9) == 1
    assert store.query("SELECT wave_id, station FROM waves") == [{"wave_id": 7, "station": "S2"}]
    with store.atomic():
        cache.apply(SyncChange(10, "wave", "7", deleted=True))
    assert store.count("waves") == 0


def test_a_double_click_during_a_run_gets_the_same_run_and_another_request_is_refused(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    _wave(cloud, 51, CHOSEN[:3])
    agent.wait_synced()
    assert agent.agent is not None
    assert agent.http is not None
    lane = agent.agent.floor.lane("S1-label")
    assert lane is not None
    send = lane.send
    gate = asyncio.Event()

    async def send_when_let_through(data: bytes) -> None:
        await gate.wait()  # the run stays in its first label until the test lets it go on
        await send(data)

    lane.send = send_when_let_through  # type: ignore[method-assign]
    with ThreadPoolExecutor(max_workers=2) as clicks:
        first = clicks.submit(_print, agent, 51, "click-1")
        wait_until(lambda: agent.http.get("/api/v1/waves/51").json()["running"], what="the run to start")
        again = clicks.submit(_print, agent, 51, "click-1")
        other = _print(agent, 51, "click-2")
        assert other.status_code == 409
        assert error_of(other)["code"] == "wave_printing"
        assert "click-1" in error_of(other)["message"]
        agent.call_on_loop(gate.set)
        answers = [first.result(timeout=20), again.result(timeout=20)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["printed"] == 3
    printer.wait_for_labels(3)
    assert _printed_refs(printer) == CHOSEN[:3]
    assert agent.http.get("/api/v1/waves/51").json()["running"] is False


def test_a_run_cut_short_by_a_restart_is_reported_interrupted_and_never_printed_twice(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    assert agent.http is not None
    _wave(cloud, 61, CHOSEN[:2])
    agent.wait_synced()
    assert _print(agent, 61, "before-restart").json()["printed"] == 2
    # As the agent leaves it when it stops mid-run: the request recorded, its end never written.
    agent.call_on_loop(
        lambda: agent.agent.store.conn.execute(  # type: ignore[union-attr]
            "UPDATE wave_prints SET finished_at_ms = NULL WHERE request_id = 'before-restart'"
        )
    )
    agent.stop()
    agent.start()
    agent.wait_synced()

    again = _print(agent, 61, "before-restart")

    assert again.status_code == 200
    assert again.json()["status"] == "interrupted"
    assert again.json()["printed"] == 2
    fresh = _print(agent, 61, "after-restart").json()
    assert (fresh["printed"], [s["code"] for s in fresh["skipped"]]) == (0, ["already_labelled"] * 2)
    assert len(printer.wait_for_labels(2)) == 2
