"""The pack path through the agent's real HTTP API, a mock ZPL printer on TCP and a mock scale on a pty."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge_agent import __version__
from edge_agent.devices.scale import WeightReading
from edge_agent.printing.jobs import Job, JobDecision, Jobs, JobStatus
from edge_agent.store.database import Store, now_ms
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until


@pytest.fixture
def printer(tmp_path: Path) -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0001").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def cloud(printer: MockPrinter, scale: MockScale) -> MemoryTransport:
    memory = MemoryTransport()
    publish_warehouse(memory)
    assert scale.pty_path
    memory.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for n in range(1, 21):
        memory.publish("order", f"T-{n:04d}", order_body(f"T-{n:04d}"))
    return memory


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()


def _jobs(agent: RunningAgent) -> list[dict[str, Any]]:
    assert agent.agent is not None
    store = agent.agent.store
    return list(agent.call_on_loop(lambda: store.query("SELECT job_id, order_ref, status FROM jobs")))


def _outbox_kinds(agent: RunningAgent) -> list[str]:
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(lambda: store.query("SELECT kind FROM outbox"))
    return [row["kind"] for row in rows] + [event.kind for event in agent.events()]


# -- the good path -------------------------------------------------------------------------------


def test_a_pack_prints_one_label_and_records_the_events(agent: RunningAgent, printer: MockPrinter) -> None:
    response = agent.pack("T-0001", "req-1")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {
        "job_id",
        "status",
        "order_ref",
        "parcel",
        "weight_g",
        "carrier",
        "service",
        "tracking_number",
        "template",
        "printer",
        "message",
    }
    assert answer["status"] == "sent"  # the answer comes as the bytes went out; the printer confirms after
    assert answer["order_ref"] == "T-0001"
    assert answer["weight_g"] == 1234
    assert answer["template"] == "shipping-4x6"
    assert answer["service"] == "express"
    assert answer["printer"] == "S1-label"
    labels = printer.wait_for_labels(1)
    fields = "\n".join(labels[0]["fields"])
    assert "Grace Hopper" in fields
    assert "12 Navy Yard Road" in fields
    assert "T-0001" in fields
    assert "1.23" in fields
    assert "Harbour Fulfilment" in fields

    wait_until(lambda: len(agent.events()) == 4, what="the four pack events at the cloud")
    kinds = sorted(event.kind for event in agent.events())
    assert kinds == ["label_confirmed", "label_printed", "order_packed", "weight_captured"]
    for event in agent.events():
        assert event.order_ref == "T-0001"
        assert event.station == "S1"
        body = json.loads(event.body)
        assert body["job_id"] == answer["job_id"]
        assert body["weight_g"] == 1234
        assert body["carrier"] == answer["carrier"]
        assert body["template"] == "shipping-4x6"
        assert body["printer"] == "S1-label"

    assert agent.http is not None
    job = agent.job(answer["job_id"])
    assert job["status"] == "printed"
    assert job["request_id"] == "req-1"
    assert labels[0]["bytes"] <= job["label_bytes"] <= labels[0]["bytes"] + 2  # the trailing newline
    assert agent.status()["outbox_depth"] == 0


def test_the_same_request_id_twice_prints_one_label(agent: RunningAgent, printer: MockPrinter) -> None:
    first = agent.pack("T-0002", "double-click")
    again = agent.pack("T-0002", "double-click")

    assert first.status_code == again.status_code == 200
    # The repeat answers the job as it is now: sent, or printed once its printer confirmed it.
    assert again.json()["status"] in ("sent", "printed")
    assert {**again.json(), "status": "sent"} == first.json()
    printer.wait_for_labels(1)
    assert len(_jobs(agent)) == 1
    assert len(printer.labels()) == 1


def test_a_new_request_id_on_a_packed_order_is_already_packed(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    first = agent.pack("T-0003", "scan-1").json()
    rescan = agent.pack("T-0003", "scan-2")

    assert rescan.status_code == 200
    assert rescan.json() == {**first, "status": "already_packed"}
    printer.wait_for_labels(1)
    assert len(printer.labels()) == 1


def test_a_request_id_reused_for_another_order_is_a_conflict(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    assert agent.pack("T-0004", "shared-id").status_code == 200
    reused = agent.pack("T-0005", "shared-id")

    assert reused.status_code == 409
    assert error_of(reused)["code"] == "request_id_reused"
    printer.wait_for_labels(1)
    assert len(printer.labels()) == 1


def test_concurrent_scans_of_one_order_print_once(agent: RunningAgent, printer: MockPrinter) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda n: agent.pack("T-0006", f"race-{n}"), range(8)))

    statuses = sorted(response.json()["status"] for response in responses)
    assert statuses == ["already_packed"] * 7 + ["sent"]
    assert len({response.json()["job_id"] for response in responses}) == 1
    printer.wait_for_labels(1)
    assert len(printer.labels()) == 1


def test_concurrent_scans_of_many_orders_on_one_parcel_use_its_weight_once(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    refs = [f"T-{n:04d}" for n in range(7, 19)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda ref: agent.pack(ref, f"many-{ref}"), refs))

    printed = [r.json() for r in responses if r.status_code == 200]
    assert len(printed) == 1, [r.text for r in responses]
    winner = printed[0]["order_ref"]
    for response in responses:
        if response.status_code != 200:
            error = error_of(response)
            assert error["code"] == "scale_weight_used", error
            assert f"already used for order {winner}" in error["message"]
            assert "1,234 g" in error["message"]
    # Each remaining order gets its own parcel, and prints exactly once.
    rest = [ref for ref in refs if ref != winner]
    for n, ref in enumerate(rest):
        put_parcel(agent, scale, 1300 + 50 * n)
        answer = agent.pack(ref, f"many-again-{ref}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["weight_g"] == 1300 + 50 * n
    labels = printer.wait_for_labels(len(refs))
    printed_refs = sorted(ref for label in labels for ref in refs if any(ref in f for f in label["fields"]))
    assert printed_refs == refs
    assert len(_jobs(agent)) == len(refs)


def test_the_next_scan_waits_for_a_new_parcel_and_never_takes_the_last_weight(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    first = agent.pack("T-0001", "next-1").json()
    assert first["weight_g"] == 1234

    # The packer scans the next order while the first parcel still sits on the scale.
    stale = agent.pack("T-0002", "next-2")

    assert stale.status_code >= 400
    error = error_of(stale)
    assert error["code"] == "scale_weight_used"
    assert error["message"].startswith("put the parcel for order T-0002 on the scale at S1")
    assert "1,234 g, was already used for order T-0001" in error["message"]
    assert "lift it off and put it back" in error["message"]
    assert agent.status()["stations"][0]["scale"]["last_used"] == {
        "grams": 1234,
        "order_ref": "T-0001",
        "parcel": 1,
    }
    assert not agent.status()["stations"][0]["scale"]["parcel_ready"]

    # The parcel is lifted (the scale reads empty), the same-weight next parcel goes on: it counts.
    scale.set_weight(0, stable=True)
    wait_until(lambda: agent.status()["stations"][0]["scale"]["weight_g"] == 0, what="the empty scale")
    empty = agent.pack("T-0002", "next-3")
    assert error_of(empty)["code"] == "scale_empty"
    assert "reads 0 g" in error_of(empty)["message"]
    put_parcel(agent, scale, 1234)
    second = agent.pack("T-0002", "next-4").json()
    assert (second["status"], second["weight_g"]) == ("sent", 1234)

    # Reprint is explicit and takes no weight.
    assert agent.http is not None
    again = agent.http.post(f"/api/v1/jobs/{first['job_id']}/reprint", json={"reason": "label torn"})
    assert again.status_code == 200, again.text
    assert again.json()["weight_g"] == 1234
    labels = printer.wait_for_labels(3)
    assert len(labels) == 3


def test_a_parcel_left_on_the_scale_across_a_restart_is_not_weighed_again(
    data_dir: Path, cloud: MemoryTransport, agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    first = agent.pack("T-0001", "restart-1").json()
    assert (first["status"], first["weight_g"]) == ("sent", 1234)
    agent.stop()  # the agent restarts (an update, a crash) while the parcel is still on the scale

    again = RunningAgent(data_dir, cloud).start()
    try:
        again.wait_synced()
        wait_until(lambda: scale_settled(again), timeout=10, what="the scale reader to settle")
        # It remembers from its jobs which weight the station's last scan took.
        assert again.status()["stations"][0]["scale"]["last_used"] == {
            "grams": 1234,
            "order_ref": "T-0001",
            "parcel": 1,
        }
        stale = again.pack("T-0002", "restart-2")
        assert error_of(stale)["code"] == "scale_weight_used", stale.text
        assert "already used for order T-0001" in error_of(stale)["message"]

        put_parcel(again, scale, 2345)  # the next parcel goes on: it counts
        second = again.pack("T-0002", "restart-3").json()
        assert (second["status"], second["weight_g"]) == ("sent", 2345)
    finally:
        again.stop()
    assert len(printer.wait_for_labels(2)) == 2


def test_a_scan_that_waits_takes_the_parcel_put_on_meanwhile(
    data_dir: Path,
    cloud: MemoryTransport,
    printer: MockPrinter,
    scale: MockScale,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wait far longer than the parcel needs to settle: the scan never gives up first, however
    # loaded the machine (the suite's agents wait only half a second).
    patient = RunningAgent(data_dir, cloud, dataclasses.replace(FAST, scale_wait_s=60)).start()
    try:
        patient.wait_synced()
        wait_until(lambda: scale_settled(patient), timeout=10, what="the scale reader to settle")
        assert patient.pack("T-0001", "wait-1").status_code == 200
        assert patient.agent is not None
        station = patient.agent.floor.get("S1")
        assert station is not None
        assert station.scale is not None
        reader = station.scale
        # The parcel goes on only once the scan is waiting for it, never before.
        scan_waits = threading.Event()
        wait_parcel_weight = reader.wait_parcel_weight

        def waiting_for_a_parcel(*args: Any, **kwargs: Any) -> WeightReading:
            scan_waits.set()
            return wait_parcel_weight(*args, **kwargs)

        monkeypatch.setattr(reader, "wait_parcel_weight", waiting_for_a_parcel)
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(patient.pack, "T-0002", "wait-2")
            assert scan_waits.wait(timeout=30), "the scan did not wait for a new parcel"
            scale.set_weight(2222, stable=True)  # the parcel lands while the scan waits for it
            answer = waiting.result(timeout=90)
        assert answer.status_code == 200, answer.text
        assert answer.json()["weight_g"] == 2222
        assert len(printer.wait_for_labels(2)) == 2
    finally:
        patient.stop()


def test_a_pack_that_records_no_job_leaves_the_weight_for_the_next_scan(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    assert scale.pty_path
    slip_only = station_body("S2", printer, scale.pty_path)  # the same scale, no label printer
    slip_only["printers"][0].update(id="S2-slip", role="slip")
    agent.cloud.publish("station", "S2", slip_only)
    agent.wait_synced()

    refused = agent.pack("T-0001", "no-label-printer", station="S2")

    assert error_of(refused)["code"] == "printer_not_configured"
    assert agent.status()["stations"][0]["scale"]["parcel_ready"]
    assert agent.pack("T-0001", "good-station").json()["weight_g"] == 1234


# -- what the packer gets wrong ------------------------------------------------------------------


def test_an_unknown_order_is_404_and_says_what_to_do(agent: RunningAgent, printer: MockPrinter) -> None:
    response = agent.pack("NO-SUCH-ORDER", "bad-1")

    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "order_not_found"
    assert "check the scanned barcode" in error["message"]
    assert "sync" in error["message"]
    assert _jobs(agent) == []
    assert printer.labels() == []


def test_an_unknown_station_is_404_and_changes_nothing(agent: RunningAgent, printer: MockPrinter) -> None:
    response = agent.pack("T-0001", "bad-2", station="S99")

    assert response.status_code == 404
    assert error_of(response)["code"] == "station_not_found"
    assert _jobs(agent) == []
    assert agent.pack("T-0001", "good-2").json()["status"] == "sent"


def test_a_cancelled_order_is_refused(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    cloud.publish("order", "CXL-1", order_body("CXL-1", state="cancelled"))
    agent.wait_synced()

    response = agent.pack("CXL-1", "cxl")

    assert response.status_code == 409
    assert error_of(response)["code"] == "order_cancelled"
    assert printer.labels() == []


# -- devices that fail ---------------------------------------------------------------------------


def test_a_scale_that_does_not_answer_is_503_and_changes_nothing(
    agent: RunningAgent, scale: MockScale, printer: MockPrinter
) -> None:
    scale.set_mode(silent=True)
    wait_until(
        lambda: agent.status()["stations"][0]["scale"]["state"] == "not_answering",
        timeout=10,
        what="the reader to notice the silent scale",
    )

    response = agent.pack("T-0019", "silent-scale")

    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "scale_not_answering"
    assert "scale" in error["message"]
    assert _jobs(agent) == []
    assert printer.labels() == []
    assert _outbox_kinds(agent) == []

    scale.set_mode(silent=False)
    scale.set_weight(2000, stable=True)
    wait_until(lambda: scale_settled(agent), timeout=10, what="the scale to answer again")
    again = agent.pack("T-0019", "scale-back")
    assert again.status_code == 200, again.text
    assert again.json()["weight_g"] == 2000


def test_a_printer_refusing_connections_holds_the_label_until_it_is_back(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    printer.set_fault("offline")

    response = agent.pack("T-0020", "printer-down")

    assert response.status_code == 202, response.text
    held = response.json()
    assert held["status"] == "held"
    assert "S1-label at S1 is offline" in held["message"]
    assert "prints by itself" in held["message"]
    assert [job["status"] for job in _jobs(agent)] == ["held"]
    wait_until(lambda: "label_held" in _outbox_kinds(agent), what="a label_held event")
    assert "label_failed" not in _outbox_kinds(agent)
    assert agent.status()["stations"][0]["printers"][0]["state"] == "offline"
    assert assert_metric(agent, 'dockside_print_failures_total{reason="printer_unreachable"}') == 1.0
    # A rescan while it waits prints nothing more: the order already has its job.
    assert agent.pack("T-0020", "printer-down-again").json()["status"] == "already_packed"

    printer.set_fault("none")
    assert agent.agent is not None
    assert agent._loop is not None
    assert agent.http is not None
    # The test agent polls hourly: run one poll the way the scheduler does.
    poll = agent.agent.scheduler.poll_printers()
    asyncio.run_coroutine_threadsafe(poll, agent._loop).result(10)
    printer.wait_for_labels(1)
    assert agent.job(held["job_id"])["status"] == "printed"
    assert len(printer.labels()) == 1


def assert_metric(agent: RunningAgent, series: str) -> float:
    assert agent.http is not None
    for line in agent.http.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} is not exported")


# -- restarts and reprints -----------------------------------------------------------------------


def test_a_job_left_sending_by_a_crash_becomes_unknown_and_is_never_reprinted(
    data_dir: Path, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    first = RunningAgent(data_dir, cloud).start()
    try:
        first.wait_synced()
    finally:
        first.stop()
    # The state a power cut leaves between committing `sending` and committing `printed`.
    store = Store.open(data_dir)
    try:
        Jobs(store).insert(
            Job(
                job_id="crashed0000000000000000000000001",
                request_id="before-crash",
                order_ref="T-0011",
                station="S1",
                printer="S1-label",
                status=JobStatus.SENDING,
                weight_g=1234,
                decision=JobDecision(carrier="DOCKSIDE", service="express", template="shipping-4x6"),
                created_at_ms=now_ms(),
                updated_at_ms=now_ms(),
                reprint_of=None,
                reason="",
                label=b"^XA^FDcrashed^FS^XZ",
            )
        )
    finally:
        store.close()

    second = RunningAgent(data_dir, cloud).start()
    try:
        assert second.http is not None
        job = second.http.get("/api/v1/jobs/crashed0000000000000000000000001").json()
        assert job["status"] == "unknown"
        wait_until(lambda: second.events("job_unknown"), what="the job_unknown exception at the cloud")
        unknown = json.loads(second.events("job_unknown")[0].body)
        assert unknown["job_id"] == "crashed0000000000000000000000001"
        assert "check whether it printed" in unknown["message"]

        rescan = second.pack("T-0011", "after-crash")
        assert rescan.json()["status"] == "already_packed"
        assert rescan.json()["job_id"] == "crashed0000000000000000000000001"
        assert printer.labels() == []  # never reprinted by itself

        reprint = second.http.post(
            "/api/v1/jobs/crashed0000000000000000000000001/reprint", json={"reason": "no label came out"}
        )
        assert reprint.status_code == 200, reprint.text
        assert len(printer.wait_for_labels(1)) == 1
    finally:
        second.stop()


def test_a_reprint_needs_a_reason_and_records_a_new_job(agent: RunningAgent, printer: MockPrinter) -> None:
    assert agent.http is not None
    job = agent.pack("T-0012", "rp-1").json()

    empty = agent.http.post(f"/api/v1/jobs/{job['job_id']}/reprint", json={"reason": "   "})
    missing = agent.http.post(f"/api/v1/jobs/{job['job_id']}/reprint", json={})
    unknown = agent.http.post("/api/v1/jobs/feedfacefeedface/reprint", json={"reason": "torn"})
    reprinted = agent.http.post(f"/api/v1/jobs/{job['job_id']}/reprint", json={"reason": "label torn"})

    assert empty.status_code == 422
    assert error_of(empty)["code"] == "reason_required"
    assert missing.status_code == 422
    assert "reason is missing" in error_of(missing)["message"]
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "job_not_found"
    assert reprinted.status_code == 200, reprinted.text
    again = reprinted.json()
    assert again["job_id"] != job["job_id"]
    assert again["status"] == "sent"
    labels = printer.wait_for_labels(2)
    assert labels[0]["data"] == labels[1]["data"]
    details = agent.http.get(f"/api/v1/jobs/{again['job_id']}").json()
    assert details["reprint_of"] == job["job_id"]
    assert details["reason"] == "label torn"
    wait_until(lambda: agent.events("label_reprinted"), what="the label_reprinted event")
    body = json.loads(agent.events("label_reprinted")[0].body)
    assert body["reprint_of"] == job["job_id"]
    assert body["reason"] == "label torn"
    # The order itself is still packed once.
    assert agent.pack("T-0012", "rp-2").json()["job_id"] == job["job_id"]


# -- status and metrics --------------------------------------------------------------------------


def test_status_and_metrics_describe_the_agent(agent: RunningAgent) -> None:
    assert agent.http is not None
    agent.pack("T-0013", "metrics-1")
    status = agent.status()

    assert status["agent_id"] == "agent-test"
    assert status["warehouse"] == "WH1"
    assert status["revision"] == agent.cloud.head
    assert status["online"] is True
    assert isinstance(status["outbox_depth"], int)
    station = status["stations"][0]
    assert station["code"] == "S1"
    assert station["printers"][0]["id"] == "S1-label"
    assert station["scale"]["state"] == "ok"
    assert agent.http.get("/healthz").json() == {"status": "ok", "version": __version__}
    assert assert_metric(agent, 'dockside_pack_seconds_count{outcome="sent"}') == 1.0
    assert assert_metric(agent, "dockside_sync_snapshots_total") == 0.0
    assert assert_metric(agent, "dockside_outbox_depth") >= 0
