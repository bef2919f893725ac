"""Confirmed printing through the agent's real API against mock printers on real sockets: a label is
`sent` when its bytes went out and `printed` only when the printer confirms it (`~HS` formats in
buffer for ZPL, real-time status for ESC/POS), with the mock's confirm modes at once, delayed and
fault-after-accept, a silent printer and a spool file."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.devices.config import PrinterConfig
from edge_agent.devices.escpos_printer import EscposPrinter
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.printing.confirmation import CONFIRM_TIMEOUT_ENV
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from edge_agent.sync.identity import save_identity
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

POLLING = dataclasses.replace(FAST, printer_check_interval_s=0.1)


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZCONFIRM1").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def zpl_printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZCONFIRM2").start()
    try:
        yield mock
    finally:
        mock.stop()


def _cloud(printer: MockPrinter | None, scale: MockScale, spool: Path | None = None) -> MemoryTransport:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    if printer is not None:
        body = station_body("S1", printer, scale.pty_path)
    else:
        assert spool is not None
        body = station_body("S1", MockPrinter(port=0, control_port=0), scale.pty_path, printer_port=9100)
        body["printers"][0] = {
            "id": "S1-label",
            "role": "label",
            "language": "zpl",
            "connection": "file",
            "device": str(spool),
        }
    cloud.publish("station", "S1", body)
    for n in range(1, 11):
        cloud.publish("order", f"C-{n:04d}", order_body(f"C-{n:04d}"))
    return cloud


def _start(data_dir: Path, cloud: MemoryTransport) -> RunningAgent:
    running = RunningAgent(data_dir, cloud, POLLING).start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, printer: MockPrinter, scale: MockScale) -> Iterator[RunningAgent]:
    running = _start(data_dir, _cloud(printer, scale))
    try:
        yield running
    finally:
        running.stop()


def _job(agent: RunningAgent, job_id: str, wait_s: float | None = None) -> dict[str, Any]:
    assert agent.http is not None
    params = {} if wait_s is None else {"wait_s": str(wait_s)}
    response = agent.http.get(f"/api/v1/jobs/{job_id}", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _kinds(agent: RunningAgent, job_id: str) -> list[str]:
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(
        lambda: store.query(
            "SELECT kind, body FROM outbox WHERE json_extract(body, '$.job_id') = ?", [job_id]
        )
    )
    sent = [event.kind for event in agent.events() if event.body and job_id.encode() in event.body]
    return [row["kind"] for row in rows] + sent


def test_a_label_is_sent_at_the_answer_and_printed_once_the_printer_confirms(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    answer = agent.pack("C-0001", "conf-1").json()

    assert answer["status"] == "sent", answer
    started = time.perf_counter()
    job = _job(agent, answer["job_id"], wait_s=5)
    waited = time.perf_counter() - started
    assert job["status"] == "printed", job
    assert job["message"] == ""
    assert job["sent_at_ms"] is not None
    assert waited < 1.0, f"a printer confirming at once took {waited:.3f} s to be heard"
    assert len(printer.labels()) == 1
    wait_until(lambda: "label_confirmed" in _kinds(agent, answer["job_id"]), what="label_confirmed")
    kinds = _kinds(agent, answer["job_id"])
    assert "label_printed" in kinds  # still at the send: the cloud's parcel state needs it


def test_a_delayed_confirmation_stays_sent_until_the_label_leaves_the_buffer(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    printer.set_confirm("delay", 3.0)

    answer = agent.pack("C-0002", "conf-2").json()

    assert answer["status"] == "sent"
    # ~HS counts the label among the formats waiting: it is not printed yet.
    assert _job(agent, answer["job_id"], wait_s=0.5)["status"] == "sent"
    assert printer.labels() == []
    job = _job(agent, answer["job_id"], wait_s=5)
    assert job["status"] == "printed", job
    assert len(printer.labels()) == 1


def test_a_fault_after_the_printer_took_the_label_holds_it_until_fixed_and_never_resends_it(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    printer.set_confirm("fault_after_accept")

    answer = agent.pack("C-0003", "conf-3").json()

    assert answer["status"] == "sent"
    held = _job(agent, answer["job_id"], wait_s=5)
    assert held["status"] == "held", held
    assert "load labels" in held["message"], held["message"]
    assert "prints by itself" in held["message"]
    assert printer.status()["formats_waiting"] == 1
    wait_until(
        lambda: "label_held_in_printer" in _kinds(agent, answer["job_id"]), what="label_held_in_printer"
    )

    printer.set_fault("none")

    wait_until(lambda: _job(agent, answer["job_id"])["status"] == "printed", timeout=5, what="printed")
    time.sleep(0.3)  # the agent's polls that follow must not send it again
    assert len(printer.labels()) == 1
    assert "label_confirmed" in _kinds(agent, answer["job_id"])


def test_labels_are_confirmed_first_in_first_out(
    zpl_printer: MockPrinter, data_dir: Path, scale: MockScale
) -> None:
    running = _start(data_dir, _cloud(zpl_printer, scale))
    try:
        zpl_printer.set_confirm("delay", 0.6)
        first = running.pack("C-0004", "fifo-1").json()
        time.sleep(0.3)
        scale.set_weight(1500, stable=True)
        wait_until(
            lambda: running.status()["stations"][0]["scale"]["parcel_ready"], what="a second parcel ready"
        )
        second = running.pack("C-0005", "fifo-2").json()
        assert (first["status"], second["status"]) == ("sent", "sent")
        # The first leaves the buffer 0.3 s before the second: confirmed while the second waits.
        assert _job(running, first["job_id"], wait_s=5)["status"] == "printed"
        assert _job(running, second["job_id"])["status"] == "sent"
        assert _job(running, second["job_id"], wait_s=5)["status"] == "printed"
    finally:
        running.stop()


def test_a_printer_that_never_answers_leaves_the_label_sent_with_that_said(
    zpl_printer: MockPrinter, data_dir: Path, scale: MockScale
) -> None:
    running = _start(data_dir, _cloud(zpl_printer, scale))
    try:
        assert running.agent is not None
        running.agent.queue.confirm_timeout_s = 1.0
        zpl_printer.set_fault("silent")
        answer = running.pack("C-0006", "silent-1").json()
        assert answer["status"] == "sent"

        job = _job(running, answer["job_id"], wait_s=10)

        assert job["status"] == "sent", job
        assert "could not confirm" in job["message"]
        assert "check that the label came out" in job["message"]
        wait_until(lambda: "label_unconfirmed" in _kinds(running, answer["job_id"]), what="label_unconfirmed")
    finally:
        running.stop()


def test_a_spool_file_cannot_confirm_so_its_label_stays_sent(
    data_dir: Path, scale: MockScale, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.zpl"
    running = _start(data_dir, _cloud(None, scale, spool))
    try:
        answer = running.pack("C-0007", "spool-1").json()

        assert answer["status"] == "sent", answer
        assert "could not confirm" in answer["message"]
        job = _job(running, answer["job_id"], wait_s=2)
        assert job["status"] == "sent"
        assert job["message"] == answer["message"]
        assert spool.read_bytes().startswith(b"^XA")
    finally:
        running.stop()


@pytest.mark.parametrize("wait_s", ["0", "-1", "31", "nan", "inf", "1e400", "ten", "", "9" * 40])
def test_hostile_waits_are_refused(agent: RunningAgent, wait_s: str) -> None:
    answer = agent.pack("C-0008", f"hostile-{len(wait_s)}").json()
    assert agent.http is not None

    response = agent.http.get(f"/api/v1/jobs/{answer['job_id']}", params={"wait_s": wait_s})

    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_wait"


def test_a_wait_given_twice_is_refused_and_an_unknown_job_is_404_without_waiting(agent: RunningAgent) -> None:
    assert agent.http is not None
    twice = agent.http.get("/api/v1/jobs/abc?wait_s=1&wait_s=2")
    assert twice.status_code == 422
    assert error_of(twice)["code"] == "invalid_wait"
    started = time.perf_counter()
    missing = agent.http.get("/api/v1/jobs/nope", params={"wait_s": "5"})
    assert missing.status_code == 404
    assert time.perf_counter() - started < 1.0


def test_the_page_can_ask_for_the_confirmation_alongside_the_pack_by_its_request_id(
    agent: RunningAgent,
) -> None:
    assert agent.http is not None
    with ThreadPoolExecutor(max_workers=1) as pool:
        early = pool.submit(agent.http.get, "/api/v1/requests/along-1/job", params={"wait_s": "5"})
        time.sleep(0.1)  # asked before the pack made its job
        answer = agent.pack("C-0009", "along-1").json()
        confirmed = early.result(timeout=10)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["job_id"] == answer["job_id"]
    assert confirmed.json()["status"] == "printed"


def test_a_request_that_made_no_job_is_404_after_its_wait_and_hostile_ones_are_refused(
    agent: RunningAgent,
) -> None:
    assert agent.http is not None
    started = time.perf_counter()
    none = agent.http.get("/api/v1/requests/never-made/job", params={"wait_s": "0.3"})
    assert none.status_code == 404
    assert error_of(none)["code"] == "job_not_found"
    assert 0.25 < time.perf_counter() - started < 3
    assert agent.http.get("/api/v1/requests/never-made/job").status_code == 404
    assert agent.http.get("/api/v1/requests/" + "x" * 65 + "/job", params={"wait_s": "5"}).status_code == 404
    for wait_s in ("0", "nan", "31", "-2"):
        refused = agent.http.get("/api/v1/requests/r/job", params={"wait_s": wait_s})
        assert refused.status_code == 422, wait_s
        assert error_of(refused)["code"] == "invalid_wait"


# -- ESC/POS: real-time status after the cut -----------------------------------------------------


@pytest.fixture
def escpos_lane() -> Iterator[tuple[MockPrinter, PrinterLane]]:
    mock = MockPrinter(port=0, control_port=0, language="escpos").start()
    config = PrinterConfig(id="TM-S1", language="escpos", host="127.0.0.1", port=mock.port)
    lane = PrinterLane(config, EscposPrinter(config, status_timeout_s=0.3), confirm_timeout_s=1.0)
    try:
        yield mock, lane
    finally:
        lane.close()
        mock.stop()


def _receipt(n: int) -> bytes:
    return b"\x1b@receipt " + str(n).encode() + b"\n\x1dV\x00"


def test_escpos_confirms_a_receipt_when_its_status_after_the_cut_is_clear(
    escpos_lane: tuple[MockPrinter, PrinterLane],
) -> None:
    _mock, lane = escpos_lane

    async def run() -> Any:
        await lane.send(_receipt(1))
        lane.sent.sent("job-1", time.monotonic())
        return await lane.poll()

    lost, confirmation = asyncio.run(run())

    assert lost == []
    assert confirmation.printed == ("job-1",)
    assert len(lane.sent) == 0


def test_escpos_holds_a_receipt_its_printer_faulted_on_and_confirms_it_after_the_fix(
    escpos_lane: tuple[MockPrinter, PrinterLane],
) -> None:
    mock, lane = escpos_lane
    mock.set_confirm("fault_after_accept")

    async def run() -> tuple[Any, Any]:
        await lane.send(_receipt(2))
        lane.sent.sent("job-2", time.monotonic())
        wait_until(lambda: mock.status()["fault"] == "paper_out", what="the printer to run out of paper")
        _lost, held = await lane.poll()
        mock.set_fault("none")
        _lost, printed = await lane.poll()
        return held, printed

    held, printed = asyncio.run(run())

    assert held.held == ("job-2",)
    assert "paper_out" in held.faults
    assert lane.state == "ready"
    assert printed.printed == ("job-2",)


def test_escpos_that_does_not_answer_leaves_the_receipt_unconfirmed_after_the_timeout(
    escpos_lane: tuple[MockPrinter, PrinterLane],
) -> None:
    mock, lane = escpos_lane
    mock.set_fault("silent")

    async def run() -> tuple[Any, Any]:
        await lane.send(_receipt(3))
        lane.sent.sent("job-3", time.monotonic() - 2.0)  # sent longer ago than the 1 s timeout
        return await lane.poll()

    _lost, confirmation = asyncio.run(run())

    assert confirmation.printed == ()
    assert confirmation.unconfirmable == ("job-3",)


@pytest.mark.parametrize(("variable", "expected"), [(None, 45.0), ("3", 3.0)])
def test_the_agent_toml_timeout_reaches_the_queue_and_the_variable_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str | None, expected: float
) -> None:
    if variable is None:
        monkeypatch.delenv(CONFIRM_TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(CONFIRM_TIMEOUT_ENV, variable)
    store = Store.open(tmp_path)
    try:
        identity = save_identity(
            store, agent_id="a", credential="c", warehouse="WH1", tenant="t", cloud="memory"
        )
        settings = dataclasses.replace(FAST, print_confirm_timeout_s=45.0)
        agent = Agent(store, identity, MemoryTransport(), settings)
        assert agent.queue.confirm_timeout_s == expected
    finally:
        store.close()
