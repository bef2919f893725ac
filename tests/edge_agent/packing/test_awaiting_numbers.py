"""Labels awaiting a leased number: held with no bytes, never blocking their printer, released by
themselves (oldest first, across restarts, their documents after them) when the cloud leases more.

Through the agent's real HTTP API, a mock ZPL printer on TCP and a mock scale on a pty; the
agent polls its printer every 0.1 s so a test waits for conditions, never for a fixed time.
Expected numbers are computed with python-stdnum, not the agent's code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.printing.jobs import Job, JobStatus
from edge_agent.store.numbers import TakenNumber
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.packing.test_pack_faults import POLLING
from tests.edge_agent.packing.test_parcels import gs1, printer, ruleset
from tests.edge_agent.waiting import wait_until

__all__ = ["printer"]  # the fixture of test_parcels, used here

LEASE = {
    "id": 1,
    "agent_id": "agent-test",
    "carrier": "ACME",
    "kind": "range",
    "first": 1000,
    "last": 1000,
    "used_through": None,
    "retired": False,
    "format": {"scheme": "gs1_mod10", "prefix": "7", "digits": 9},
}


@pytest.fixture
def cloud(printer: MockPrinter, scale: MockScale) -> MemoryTransport:
    memory = MemoryTransport()
    publish_warehouse(memory)
    assert scale.pty_path
    memory.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for n in range(1, 6):
        memory.publish("order", f"A-{n:04d}", order_body(f"A-{n:04d}"))
    # ACME's numbers are leased, and this agent has none yet.
    memory.publish("carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}})
    memory.publish("ruleset", "default", ruleset("ACME"))
    return memory


def _started(data_dir: Path, cloud: MemoryTransport) -> RunningAgent:
    running = RunningAgent(data_dir, cloud, POLLING).start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = _started(data_dir, cloud)
    try:
        yield running
    finally:
        running.stop()


def _pack(agent: RunningAgent, scale: MockScale, ref: str, grams: int) -> dict[str, Any]:
    put_parcel(agent, scale, grams)
    response = agent.pack(ref, f"req-{ref}")
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def _job(agent: RunningAgent, job_id: str) -> dict[str, Any]:
    assert agent.http is not None
    return dict(agent.http.get(f"/api/v1/jobs/{job_id}").json())


def _awaiting(agent: RunningAgent, job_id: str) -> bool:
    job = _job(agent, job_id)
    return bool(job["status"] == "held" and job["label_bytes"] == 0 and job["tracking_number"] == "")


def _lane_held(agent: RunningAgent) -> int:
    return int(agent.status()["stations"][0]["printers"][0]["held_jobs"])


def _fields(label: dict[str, Any]) -> str:
    return "\n".join(label["fields"])


def test_a_label_awaiting_a_number_does_not_block_another_carriers_held_label(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    waiting = _pack(agent, scale, "A-0001", 1500)
    assert waiting["status"] == "held"
    assert _lane_held(agent) == 0  # it waits for the cloud, not for the printer

    printer.set_fault("paper_out")
    wait_until(lambda: agent.status()["stations"][0]["printers"][0]["state"] == "fault", what="the fault")
    cloud.publish("ruleset", "default", ruleset("OTHER"))  # no carrier account: the job-id reference
    agent.wait_synced()
    other = _pack(agent, scale, "A-0002", 1600)
    assert (other["status"], other["carrier"]) == ("held", "OTHER")
    assert "out of labels" in other["message"]
    assert _lane_held(agent) == 1

    printer.set_fault("none")
    printer.wait_for_labels(1)
    wait_until(lambda: _job(agent, other["job_id"])["status"] == "printed", what="the held label to print")
    assert "A-0002" in _fields(printer.labels()[0])
    assert _awaiting(agent, waiting["job_id"])  # still waiting for its number, never sent
    assert _lane_held(agent) == 0
    assert len(printer.labels()) == 1


def test_labels_awaiting_numbers_survive_restarts_and_print_oldest_first_as_numbers_come(
    data_dir: Path, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    first = _started(data_dir, cloud)
    try:
        older = _pack(first, scale, "A-0001", 1500)
        newer = _pack(first, scale, "A-0002", 1600)
        assert (older["status"], newer["status"]) == ("held", "held")
    finally:
        first.stop()

    second = _started(data_dir, cloud)
    try:
        # No number yet: after the restart both still wait (not unknown), nothing printed.
        assert _awaiting(second, older["job_id"])
        assert _awaiting(second, newer["job_id"])
        cloud.publish("number_lease", "1", LEASE)  # one number: the older label's
        second.wait_synced()
        printer.wait_for_labels(1)
        wait_until(lambda: _job(second, older["job_id"])["status"] == "printed", what="the older label")
        assert _job(second, older["job_id"])["tracking_number"] == gs1("7", 1000, 9)
        assert gs1("7", 1000, 9) in _fields(printer.labels()[0])
        assert "A-0001" in _fields(printer.labels()[0])
        assert _awaiting(second, newer["job_id"])
    finally:
        second.stop()

    # More numbers arrive while the agent is down: the waiting label prints as it starts.
    cloud.publish("number_lease", "2", {**LEASE, "id": 2, "first": 2000, "last": 2009})
    third = _started(data_dir, cloud)
    try:
        printer.wait_for_labels(2)
        wait_until(lambda: _job(third, newer["job_id"])["status"] == "printed", what="the newer label")
        assert _job(third, newer["job_id"])["tracking_number"] == gs1("7", 2000, 9)
        assert "A-0002" in _fields(printer.labels()[1])
        wait_until(lambda: len(third.events("label_printed")) == 2, what="the label_printed events")
        used = sorted(json.loads(event.body)["serial"] for event in third.events("number_used"))
        assert used == [1000, 2000]
        kinds = [event.kind for event in third.events()]
        counts = [kinds.count(kind) for kind in ("label_held", "order_packed", "job_unknown")]
        assert counts == [2, 2, 0]
        assert len(printer.labels()) == 2
    finally:
        third.stop()


def test_a_parcels_documents_wait_with_its_label_and_print_after_it(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    slip = {"kind": "packing_slip", "template": "shipping-4x6", "printer_role": "label"}
    with_slip = {**ruleset("ACME"), "default": {"carrier": "ACME", "documents": [slip]}}
    cloud.publish("ruleset", "default", with_slip)
    agent.wait_synced()
    waiting = _pack(agent, scale, "A-0003", 1700)
    assert waiting["status"] == "held"
    assert agent.status()["jobs"] == {"held": 1}  # the packing slip waits too: no job yet
    # The ruleset changes before the numbers come: the packed parcel keeps the documents of its scan.
    cloud.publish("ruleset", "default", ruleset("ACME"))
    cloud.publish("number_lease", "1", LEASE)
    agent.wait_synced()

    labels = printer.wait_for_labels(2)
    wait_until(lambda: agent.status()["jobs"] == {"printed": 2}, what="the label and its packing slip")
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(
        lambda: store.query("SELECT job_id, document, tracking_number, request_id FROM jobs ORDER BY rowid")
    )
    assert [(row["document"], row["tracking_number"]) for row in rows] == [
        ("shipping_label", gs1("7", 1000, 9)),
        ("packing_slip", gs1("7", 1000, 9)),
    ]
    assert rows[1]["request_id"] == "req-A-0003:packing_slip"
    # The label first, then its document.
    assert rows[0]["job_id"] in _fields(labels[0])
    assert rows[1]["job_id"] in _fields(labels[1])
    assert len(printer.labels()) == 2


def test_a_label_awaiting_a_number_is_never_sent_with_empty_bytes(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    waiting = _pack(agent, scale, "A-0004", 1800)
    assert agent.agent is not None
    assert agent._loop is not None
    queue, floor = agent.agent.queue, agent.agent.floor
    lane = floor.lane("S1-label")
    assert lane is not None
    loop = agent._loop

    def run(work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=10)

    async def miscounted_release() -> int:
        lane.held = 1  # a count gone wrong must still never send the waiting job's empty label
        return await queue.release_held(lane)

    assert run(miscounted_release()) == 0
    assert lane.held == 0
    agent.call_on_loop(queue.count_held)
    assert lane.held == 0
    row: Job = agent.call_on_loop(lambda: queue.jobs.get(waiting["job_id"]))
    assert row.decision.awaits_number == "ACME"

    async def send_as_it_is() -> Job:
        async with lane.lock:
            return await queue.print_awaited(lane, row, TakenNumber(1, "ACME", "range", 1000, "71000"))

    with pytest.raises(ValueError, match="has no label"):
        run(send_as_it_is())

    # Rendered with a number that is not this agent's next one: refused, nothing recorded.
    rendered = dataclasses.replace(
        row,
        label=b"^XA^FDhostile^FS^XZ",
        tracking_number="X1",
        decision=dataclasses.replace(row.decision, awaits_number=""),
    )

    async def send_stale() -> Job:
        async with lane.lock:
            return await queue.print_awaited(lane, rendered, TakenNumber(99, "ACME", "range", 5, "X1"))

    with pytest.raises(RuntimeError, match="nothing recorded"):
        run(send_stale())
    assert _awaiting(agent, waiting["job_id"])
    taken = agent.call_on_loop(lambda: agent.agent.store.query("SELECT * FROM numbers_taken"))  # type: ignore[union-attr]
    assert taken == []
    # A job that no longer awaits a number is never filled in (a second release takes nothing).
    printed = dataclasses.replace(rendered, job_id="no-such-job", status=JobStatus.SENDING)

    def fill_missing() -> None:
        with agent.agent.store.atomic():  # type: ignore[union-attr]
            queue.jobs.fill_awaited(printed)

    with pytest.raises(RuntimeError, match="no longer awaits a number"):
        agent.call_on_loop(fill_missing)
    assert printer.labels() == []
