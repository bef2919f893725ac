"""Chaos: an agent process taking leased tracking numbers for label after label is SIGKILLed at
random moments, again and again; afterwards no number was taken twice or lost silently.

The worker (this file run as a program) is the agent's own print path on its real store: the
cache with a synced lease, the print queue (`PrintQueue.print_job` with the number, as the packer
calls it: the number asked for under the lane's lock and taken in the job's transaction) and a
ZPL printer lane to a mock printer over TCP in the test process. Each start recovers what the last
run left `sending` (the queue's startup path, which voids those jobs' numbers), then prints until
it is killed. The test then counts, from the store and from the printer's own ledger:

- the serials taken are exactly first..first+k-1 (none skipped, none twice: the table's unique
  key and the count agree);
- each is `used` by a job that printed or `voided` by one that ended `unknown`/`failed`, with
  exactly one `number_used` event, and one `number_voided` event for each voided one;
- no job is left `sending`, and the printer printed no tracking number twice, nor one the store
  does not know.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import PrinterError
from dockside.sync import ChangeKind, SyncChange
from edge_agent.devices.config import PrinterConfig
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import StationFloor
from edge_agent.devices.zpl import ZplPrinter
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.pack import PACKED_EVENTS
from edge_agent.printing.jobs import Job, JobDecision, JobStatus, new_job_id
from edge_agent.printing.queue import PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox
from edge_agent.sync.identity import load_identity, save_identity
from hardware_mocks import MockPrinter

AGENT = "chaos-agent"
FIRST, LAST = 1, 999_999
FORMAT = {"scheme": "gs1_mod10", "prefix": "4", "digits": 9}
KILLS = 6
# Each label carries a comment this long, so a send takes long enough for some kills to land in it.
PADDING = 48 * 1024


def _lease() -> dict[str, Any]:
    return {
        "id": 1,
        "agent_id": AGENT,
        "carrier": "ACME",
        "kind": "range",
        "first": FIRST,
        "last": LAST,
        "used_through": None,
        "retired": False,
        "format": FORMAT,
    }


async def _work(data_dir: Path, printer_port: int, recover_only: bool) -> None:
    """One run of the worker: recover, then take a number and print a label, until killed."""
    store = Store.open(data_dir)
    if load_identity(store) is None:
        save_identity(store, agent_id=AGENT, credential="c", warehouse="WH1", tenant="t", cloud="memory")
    cache = Cache(store)
    cache.load()
    queue = PrintQueue(store, cache, StationFloor(), Outbox(store), AgentMetrics())
    queue.recover_unfinished()
    if recover_only:
        store.close()
        return
    if not cache.number_leases:
        with store.atomic():
            cache.apply(SyncChange(1, ChangeKind.NUMBER_LEASE, "1", json.dumps(_lease()).encode()))
            store.set_revision(1)
        cache.after_commit()
    config = PrinterConfig.from_dict(
        {"id": "P1", "language": "zpl", "host": "127.0.0.1", "port": printer_port}
    )
    lane = PrinterLane(config, ZplPrinter(config))
    print("ready", flush=True)
    while True:
        async with lane.lock:
            number = queue.numbers.next_number("ACME")
            assert number is not None
            now = now_ms()
            label = f"^XA^FO20,20^FD{number.tracking_number}^FS^FX{'x' * PADDING}^FS^XZ".encode()
            job = Job(
                job_id=new_job_id(),
                request_id=None,
                order_ref=f"C-{number.serial}",
                station="S1",
                printer="P1",
                status=JobStatus.SENDING,
                weight_g=1000,
                decision=JobDecision(carrier="ACME", service="", template="chaos"),
                created_at_ms=now,
                updated_at_ms=now,
                reprint_of=None,
                reason="",
                label=label,
                tracking_number=number.tracking_number,
            )
            try:
                await queue.print_job(lane, job, PACKED_EVENTS, number=number)
            except PrinterError:
                await asyncio.sleep(0.01)


def _start_worker(data_dir: Path, port: int, *, recover_only: bool = False) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.edge_agent.packing.test_numbers_chaos", str(data_dir), str(port)]
    return subprocess.Popen(
        [*args, "recover"] if recover_only else args,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZCHAOS1").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.mark.timeout(60)
def test_numbers_taken_by_an_agent_killed_at_random_are_each_used_or_voided_once(
    data_dir: Path, printer: MockPrinter
) -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "0")) or None)
    for _ in range(KILLS):
        worker = _start_worker(data_dir, printer.port)
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready", "the worker did not start"
        time.sleep(rng.uniform(0.05, 0.4))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        worker.stdout.close()
    recovery = _start_worker(data_dir, printer.port, recover_only=True)
    assert recovery.wait(timeout=20) == 0
    assert recovery.stdout is not None
    recovery.stdout.close()

    store = Store.open(data_dir)
    try:
        taken = store.query(
            "SELECT serial, tracking_number, job_id, state FROM numbers_taken ORDER BY serial"
        )
        jobs = {row["job_id"]: row for row in store.query("SELECT job_id, status, tracking_number FROM jobs")}
        events = collections.defaultdict(list)
        for row in store.query("SELECT kind, body FROM outbox WHERE kind LIKE 'number_%'"):
            events[row["kind"]].append(json.loads(row["body"]))
    finally:
        store.close()

    assert len(taken) >= KILLS, "the worker took too few numbers for the kills to mean anything"
    assert [row["serial"] for row in taken] == list(range(FIRST, FIRST + len(taken)))
    assert len({row["tracking_number"] for row in taken}) == len(taken)
    assert [job for job in jobs.values() if job["status"] == JobStatus.SENDING] == []
    for row in taken:
        job = jobs.get(row["job_id"])
        assert job is not None, f"serial {row['serial']} was taken by no job"
        assert job["tracking_number"] == row["tracking_number"]
        expected = (
            "used" if job["status"] in (JobStatus.SENT, JobStatus.PRINTED, JobStatus.HELD) else "voided"
        )
        assert row["state"] == expected, (row, job)

    used = collections.Counter(event["serial"] for event in events["number_used"])
    voided = collections.Counter(event["serial"] for event in events["number_voided"])
    assert used == collections.Counter(row["serial"] for row in taken)
    assert voided == collections.Counter(row["serial"] for row in taken if row["state"] == "voided")

    known = {row["tracking_number"] for row in taken}
    printed = collections.Counter(
        field for label in printer.labels() for field in label["fields"] if field.startswith("4")
    )
    assert [number for number, count in printed.items() if count > 1] == []
    assert set(printed) <= known


if __name__ == "__main__":
    asyncio.run(_work(Path(sys.argv[1]), int(sys.argv[2]), recover_only=sys.argv[3:] == ["recover"]))
