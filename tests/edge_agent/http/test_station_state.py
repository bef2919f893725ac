"""The station snapshot's truth: whether a label can print now (fallback included), and the held
labels of each station, read from the agent's jobs (`edge_agent.http.station_state`).

Real mock printers on TCP and a real mock scale on a pty, the snapshot read from the station's
server-sent events as the page reads it; the held list's re-reading rule on its own, with a
counted stand-in for the jobs table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from edge_agent.http.station_state import MAX_HELD_LISTED, HeldLabels
from edge_agent.printing.jobs import Job, JobDecision
from edge_agent.printing.queue import PrintQueue
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

POLLING = dataclasses.replace(FAST, printer_check_interval_s=0.1, scale_watchdog_interval_s=0.1)


@pytest.fixture
def printers() -> Iterator[tuple[MockPrinter, MockPrinter]]:
    primary = MockPrinter(port=0, control_port=0, serial="ZTRUTH001").start()
    spare = MockPrinter(port=0, control_port=0, serial="ZTRUTH002").start()
    try:
        yield primary, spare
    finally:
        primary.stop()
        spare.stop()


@pytest.fixture
def agent(
    data_dir: Path, printers: tuple[MockPrinter, MockPrinter], scale: MockScale
) -> Iterator[RunningAgent]:
    primary, spare = printers
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    station = station_body("S1", primary, scale.pty_path)
    station["printers"].append(
        {
            "id": "S1-spare",
            "role": "label-fallback",
            "language": "zpl",
            "host": "127.0.0.1",
            "port": spare.port,
        }
    )
    cloud.publish("station", "S1", station)
    cloud.publish("station", "S2", {"code": "S2", "printers": [], "scale": None})
    for n in range(1, 4):
        cloud.publish("order", f"T-{n:04d}", order_body(f"T-{n:04d}"))
    running = RunningAgent(data_dir, cloud, POLLING).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()


def snapshot(agent: RunningAgent, code: str = "S1") -> dict[str, Any]:
    """The first snapshot the station page's event stream sends."""
    assert agent.http is not None
    with agent.http.stream("GET", f"/api/v1/stations/{code}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[len("data: ") :]))
    raise AssertionError("the stream ended without a snapshot")


def _state(agent: RunningAgent, printer_id: str) -> str:
    printers = agent.status()["stations"][0]["printers"]
    return str(next(p for p in printers if p["id"] == printer_id)["state"])


def test_a_label_can_print_while_the_fallback_stands_in_and_not_once_both_are_faulted(
    agent: RunningAgent, printers: tuple[MockPrinter, MockPrinter]
) -> None:
    primary, spare = printers
    assert snapshot(agent)["label_printer"] == {
        "ready": True,
        "printer": "S1-label",
        "state": "ready",
        "message": "",
        "code": "printer_ready",
        "params": {"printer": "ZD421 S1-label", "station": "S1"},
    }

    primary.set_fault("paper_out")
    wait_until(lambda: _state(agent, "S1-label") == "fault", what="the poll to see the paper out")
    standing_in = snapshot(agent)["label_printer"]
    assert standing_in["ready"] is True
    assert standing_in["printer"] == "S1-spare"
    assert "printed on" in standing_in["message"]
    assert "S1-spare" in standing_in["message"]
    assert standing_in["code"] == "printer_fallback"
    assert standing_in["params"]["faults"] == ["paper_out"]
    assert standing_in["params"]["fallback"].endswith("S1-spare")

    spare.set_fault("head_open")
    wait_until(lambda: _state(agent, "S1-spare") == "fault", what="the poll to see the open head")
    stopped = snapshot(agent)["label_printer"]
    assert stopped["ready"] is False
    assert stopped["printer"] == "S1-label"
    assert stopped["message"] == "ZD421 S1-label at S1 is out of labels: load labels"
    # The page words it from its catalog: the code and what the message names.
    assert stopped["code"] == "printer_fault"
    assert stopped["params"] == {"printer": "ZD421 S1-label", "station": "S1", "faults": ["paper_out"]}

    # A station with no label printer cannot print either, and says what to configure.
    nothing = snapshot(agent, "S2")["label_printer"]
    assert nothing["ready"] is False
    assert nothing["state"] == "missing"
    assert "has no label printer" in nothing["message"]


def test_held_labels_are_listed_for_their_station_oldest_first_until_they_print(
    agent: RunningAgent, printers: tuple[MockPrinter, MockPrinter], scale: MockScale
) -> None:
    primary, spare = printers
    assert snapshot(agent)["held"] == []
    primary.set_fault("paper_out")
    spare.set_fault("paper_out")
    wait_until(
        lambda: _state(agent, "S1-label") == "fault" and _state(agent, "S1-spare") == "fault",
        what="both printers out of paper",
    )
    for n, grams in ((1, 1200), (2, 1300)):
        put_parcel(agent, scale, grams)
        answer = agent.pack(f"T-000{n}", f"held-{n}")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "held"

    seen = snapshot(agent)
    assert [h["order_ref"] for h in seen["held"]] == ["T-0001", "T-0002"]
    assert seen["held_count"] == 2
    first = seen["held"][0]
    assert first["document"] == "shipping_label"
    assert first["parcel"] == 1
    assert first["printer"] == "S1-label"
    assert "out of labels: load labels" in first["message"]
    assert first["awaits_number"] == ""
    assert first["reprint"] is False
    assert first["since_ms"] <= seen["held"][1]["since_ms"]
    assert snapshot(agent, "S2")["held"] == []  # another station's list stays its own

    primary.set_fault("none")
    wait_until(lambda: snapshot(agent)["held"] == [], timeout=10, what="the held labels to print")
    assert snapshot(agent)["held_count"] == 0
    primary.wait_for_labels(2)


@dataclasses.dataclass
class _CountedJobs:
    """A jobs table stand-in that counts its reads."""

    held: list[Job]
    written: int = 0
    reads: int = 0

    def held_at(self, station: str) -> list[Job]:
        self.reads += 1
        return [job for job in self.held if job.station == station]


def _job(n: int, station: str = "S1") -> Job:
    return Job(
        job_id=f"j{n}",
        request_id=None,
        order_ref=f"O-{n}",
        station=station,
        printer="P1",
        status="held",
        weight_g=1000,
        decision=JobDecision(carrier="DOCKSIDE", service="", template="t"),
        created_at_ms=n,
        updated_at_ms=n,
        reprint_of=None,
        reason="",
        label=b"",
        message="",
    )


def test_the_held_list_is_read_again_only_when_it_may_have_changed() -> None:
    jobs = _CountedJobs(held=[])
    lane = SimpleNamespace(held=0, config=SimpleNamespace(id="P1"), faulted=False, name="ZD421 P1")
    station = cast(Any, SimpleNamespace(code="S1", printers=[lane]))
    held = HeldLabels(cast(PrintQueue, SimpleNamespace(jobs=jobs)), max_age_s=3600)

    assert held.at(station) == ([], 0)
    assert held.at(station) == ([], 0)
    assert jobs.reads == 1  # nothing written, no count moved: no query five times a second

    jobs.held = [_job(n) for n in range(MAX_HELD_LISTED + 5)] + [_job(999, station="S2")]
    jobs.written += 1
    labels, count = held.at(station)
    assert jobs.reads == 2
    assert count == MAX_HELD_LISTED + 5  # every held label counted, the oldest listed
    assert [h["order_ref"] for h in labels] == [f"O-{n}" for n in range(MAX_HELD_LISTED)]
    assert labels[0]["message"] == "waits for printer P1"
    assert (labels[0]["code"], labels[0]["params"]) == ("held_waiting", {"printer": "ZD421 P1"})

    jobs.held = jobs.held[1:]
    lane.held -= 1  # a release moves its printer's count
    assert held.at(station)[1] == MAX_HELD_LISTED + 4
    assert jobs.reads == 3

    # A label awaiting a number leaves the list with no write and no count: a non-empty list is
    # read again once it is older than max_age_s.
    aging = HeldLabels(cast(PrintQueue, SimpleNamespace(jobs=jobs)), max_age_s=0)
    aging.at(station)
    reads = jobs.reads
    jobs.held = []
    assert aging.at(station) == ([], 0)
    assert jobs.reads == reads + 1
