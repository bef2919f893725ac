"""What a station can do right now, as its page shows it: can it print, and which labels are held.

The station page says READY only when the station can print a label. `label_printer` answers
that with the print queue's own routing rule (`PrintQueue.route`: the station's label printer, or
its fallback while that one is in a fault), so the page and the pack path never disagree: when
the printer a label would go to now is in a fault, it is not ready, and its `message` is the
fault and its fix ("ZD421 S1-label at S1 is out of labels: load labels").

Each message the page shows comes with a `code` and its `params` (printer, station, faults: the
printer's fault codes, such as "paper_out" or "head_open"), so the page words it in the packer's
language from its catalog; the English `message` stays for API users and logs.

`HeldLabels` lists a station's held jobs (waiting for their printer, or awaiting a leased
tracking number), oldest first, as the page lists them and announces each when it leaves the
list. The station stream builds a snapshot five times a second; the list is read again from the
store only when a job was written or a printer's held count moved (and, while the list is not
empty, at least every `max_age_s`: a label awaiting a number leaves it without either).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dockside.errors import PrinterError
from dockside.rules import DEFAULT_DECISION
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import Station
from edge_agent.printing.jobs import Job
from edge_agent.printing.queue import PrintQueue

__all__ = ["MAX_HELD_LISTED", "HeldLabels", "label_printer", "printer_said"]

# A wave held by a faulted printer can hold hundreds of labels: the page lists the oldest ones
# and the count, so a snapshot stays small.
MAX_HELD_LISTED = 50


def printer_said(lane: PrinterLane, station: str) -> dict[str, Any]:
    """What a printer's state says to a packer, as a code and its params: `printer_fault` with
    the printer's name, the station and its fault codes (offline, no_answer, paper_out...) when
    it cannot print, `printer_unchecked` before its first check, else `printer_ready`."""
    params: dict[str, Any] = {"printer": lane.name, "station": station}
    if lane.faulted:
        faults = sorted(lane.faults) or ["offline" if lane.state == "offline" else "no_answer"]
        return {"code": "printer_fault", "params": {**params, "faults": faults}}
    if lane.state == "unknown":
        return {"code": "printer_unchecked", "params": params}
    return {"code": "printer_ready", "params": params}


def label_printer(queue: PrintQueue, station: Station) -> dict[str, Any]:
    """The printer a shipping label at `station` would go to now: whether it can print, and if
    not, what stops it and the fix (`ready`, `printer`, `state`, `message`, and the message as
    `code` and `params`)."""
    try:
        lane, note = queue.route(station, DEFAULT_DECISION.printer_role)
    except PrinterError as exc:  # no label printer at this station: a configuration change helps
        return {
            "ready": False,
            "printer": None,
            "state": "missing",
            "message": exc.message,
            "code": exc.code,
            "params": {"station": station.code, **exc.params},
        }
    said = printer_said(lane, station.code)
    if lane.faulted:
        return {
            "ready": False,
            "printer": lane.config.id,
            "state": lane.state,
            "message": lane.trouble(station.code),
            **said,
        }
    primary = next((other for other in station.printers if other is not lane and other.faulted), None)
    if note and primary is not None:  # the fallback stands in for the faulted label printer
        fault = printer_said(primary, station.code)["params"]
        said = {"code": "printer_fallback", "params": {**fault, "fallback": lane.name}}
    return {"ready": True, "printer": lane.config.id, "state": lane.state, "message": note, **said}


def _held_reason(job: Job, station: Station) -> dict[str, Any]:
    """Why a held label waits, as a code and its params: a tracking number from its carrier
    (`awaits_number`), its printer's fault (`held_printer_fault`), or its turn (`held_waiting`)."""
    if job.decision.awaits_number:
        return {"code": "awaits_number", "params": {"carrier": job.decision.awaits_number}}
    lane = next((lane for lane in station.printers if lane.config.id == job.printer), None)
    if lane is not None and lane.faulted:
        said = printer_said(lane, station.code)
        return {"code": "held_printer_fault", "params": said["params"]}
    return {"code": "held_waiting", "params": {"printer": lane.name if lane else job.printer}}


def _held_label(job: Job, station: Station) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "order_ref": job.order_ref,
        "parcel": job.parcel,
        "document": job.document,
        "printer": job.printer,
        "since_ms": job.created_at_ms,
        "reprint": job.reprint_of is not None,
        "awaits_number": job.decision.awaits_number or "",
        "message": job.message or f"waits for printer {job.printer}",
        **_held_reason(job, station),
    }


@dataclass
class _Read:
    key: tuple[int, tuple[int, ...]]
    at: float
    labels: list[dict[str, Any]]
    count: int


class HeldLabels:
    """The held labels of each station of one agent, read from its jobs when they may have changed."""

    def __init__(self, queue: PrintQueue, *, max_age_s: float = 1.0) -> None:
        self._jobs = queue.jobs
        self._max_age_s = max_age_s
        self._reads: dict[str, _Read] = {}

    def at(self, station: Station) -> tuple[list[dict[str, Any]], int]:
        """The station's held labels, oldest first (at most MAX_HELD_LISTED), and how many there are."""
        key = (self._jobs.written, tuple(lane.held for lane in station.printers))
        now = time.monotonic()
        read = self._reads.get(station.code)
        if read is None or read.key != key or (read.count and now - read.at >= self._max_age_s):
            jobs = self._jobs.held_at(station.code)
            read = _Read(key, now, [_held_label(job, station) for job in jobs[:MAX_HELD_LISTED]], len(jobs))
            self._reads[station.code] = read
        return read.labels, read.count
