"""Print jobs: one row per label handed (or about to be handed) to a printer.

    held, awaiting a number ──(the cloud leases more)──> held, or sending
    held ──(printer ready)──> sending ──> sent ──(the printer confirms)──> printed
                                 │   │      ├──(a fault with it still in the printer)──> held (in the printer)
                                 │   │      └──(the printer cannot confirm)──> sent, with that said
                                 │  └──(connection broke mid-label)──> failed
                                 └──(agent stopped)──> unknown

A job is written `sending` and committed before its bytes go out, so a crash during the send
leaves a trace: on restart such a job becomes `unknown` and a person decides (printing is
at-most-once automatically). `held` means no byte has gone out yet because its printer is in a
fault (or labels ahead of it are): it goes out by itself, once, when the printer reports ready,
and its `message` tells the packer what to fix. `sent` means the printer took every byte; `printed`
that the printer then said it printed them (its buffer drained with no fault: see
`edge_agent.devices.print_confirmation`). A printer that faults with the label still in its buffer
keeps it and prints it after the fix: the job is `held` again with the fix as its message, but its
`sent_at_ms` is set, so it is never sent a second time (it turns `printed` when the printer
confirms). A printer that cannot confirm (a spool file, no answer in time) leaves the job `sent`
with a message that says so. `failed` means the connection broke during the send, so the label
may be missing or partial. Neither
`failed` nor `unknown` is ever reprinted without a person asking.

A `held` job whose decision names `awaits_number` (a carrier) has no label yet: its parcel was
packed when this agent had no leased number of that carrier left. It waits for no printer (the
held counts and `next_held` leave it out, so it never blocks its printer's other held labels, and
is never sent with empty bytes); when the cloud leases more numbers it is rendered with the next
one, which it takes in the transaction that fills in its label (`fill_awaited`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from uuid6 import uuid7

from dockside.rules import DocumentAction
from dockside.shipping.parcels import DocumentKind, ParcelFacts
from edge_agent.store.database import Store, now_ms

__all__ = [
    "SENT_OR_PRINTED",
    "Job",
    "JobDecision",
    "JobStatus",
    "Jobs",
    "PackAnswer",
    "log_outcome",
    "new_job_id",
]

_COLUMNS = (
    "job_id, request_id, order_ref, station, printer, status, weight_g, decision, "
    "created_at_ms, updated_at_ms, reprint_of, reason, label, message, parcel, document, tracking_number, "
    "packer, sent_at_ms"
)
# A held job that waits for its printer, not for a leased number (see the module docstring).
_NOT_AWAITING = "json_extract(decision, '$.awaits_number') IS NULL"
# A held job whose bytes have not gone out yet (one held in the printer's own buffer never goes again).
_NOT_SENT = "sent_at_ms IS NULL"


class JobStatus(StrEnum):
    """Where a job is: see the module docstring."""

    HELD = "held"
    SENDING = "sending"
    SENT = "sent"  # every byte went out; the printer has not confirmed it printed (yet, or ever)
    PRINTED = "printed"  # the printer confirmed it
    FAILED = "failed"
    UNKNOWN = "unknown"
    VOIDED = "voided"  # a parcel's label voided on purpose (kept for history; the parcel relabels)

    @property
    def went_out(self) -> bool:
        """Whether the label's bytes all reached the printer (`sent` or `printed`): what the pack
        path, reprint and waves count as done the moment a send returns."""
        return self in SENT_OR_PRINTED


# The statuses of a label that went out (confirmed or not yet): what "the label is on the parcel" means.
SENT_OR_PRINTED = frozenset({JobStatus.SENT, JobStatus.PRINTED})


def new_job_id() -> str:
    """A new job id: time-ordered (UUIDv7), so the jobs table's key index only grows at its end."""
    return uuid7().hex


@dataclass(frozen=True, slots=True)
class JobDecision:
    """What a job records of how its label was decided: the rules' carrier, service and printer
    role, the template version that rendered it, and for a wave's label (printed at the order's
    expected weight, not weighed) where its weight came from and which wave printed it; the
    parcel's dimensions when known, and a carton label's SSCC.

    A job held until a leased number comes names the carrier whose number it awaits
    (`awaits_number`), and a parcel's shipping label that waits also keeps the ruleset's
    `documents` for the parcel, which print after it once it is released (the decision made at
    the scan, so a ruleset published meanwhile does not change what the packed parcel gets).

    Stored as the jobs table's `decision` JSON: the three names always, the rest when known.
    """

    carrier: str
    service: str
    template: str
    template_version: int | None = None
    printer_role: str | None = None
    weight_source: str | None = None
    wave_id: int | None = None
    dimensions_mm: tuple[int, int, int] | None = None
    sscc: str = ""
    awaits_number: str = ""
    documents: tuple[DocumentAction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stored JSON, keys in this order; what is not known is left out."""
        body: dict[str, Any] = {"carrier": self.carrier, "service": self.service, "template": self.template}
        for key in ("template_version", "printer_role", "weight_source", "wave_id"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.dimensions_mm is not None:
            body["dimensions_mm"] = list(self.dimensions_mm)
        if self.sscc:
            body["sscc"] = self.sscc
        if self.awaits_number:
            body["awaits_number"] = self.awaits_number
        if self.documents:
            body["documents"] = [document.to_json() for document in self.documents]
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> JobDecision:
        """Read back a stored decision (jobs written before a field existed lack it)."""
        return cls(
            carrier=body.get("carrier", ""),
            service=body.get("service", ""),
            template=body.get("template", ""),
            template_version=body.get("template_version"),
            printer_role=body.get("printer_role"),
            weight_source=body.get("weight_source"),
            wave_id=body.get("wave_id"),
            dimensions_mm=_dimensions(body.get("dimensions_mm")),
            sscc=str(body.get("sscc") or ""),
            awaits_number=str(body.get("awaits_number") or ""),
            documents=_documents(body.get("documents")),
        )


def _documents(value: Any) -> tuple[DocumentAction, ...]:
    """The stored documents of a waiting label (what this agent wrote; anything else is skipped)."""
    if not isinstance(value, list):
        return ()
    kinds = {kind.value: kind for kind in DocumentKind}
    found = []
    for entry in value:
        if not isinstance(entry, dict) or entry.get("kind") not in kinds:
            continue
        texts = [entry.get(key, "") for key in ("template", "printer_role", "carrier")]
        if not all(isinstance(text, str) for text in texts):
            continue
        template, role, carrier = texts
        found.append(DocumentAction(kinds[entry["kind"]], template, role or "label", carrier))
    return tuple(found)


def _dimensions(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(d, int) for d in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    return None


@dataclass(frozen=True, slots=True)
class Job:
    """One label job as stored: one document (the shipping label by default) of one parcel of an order.

    `tracking_number` is the number printed on the parcel's shipping label: a leased number, the
    one the OMS sent, or (no carrier account) the job-id reference; a reprint keeps it.
    """

    job_id: str
    request_id: str | None
    order_ref: str
    station: str
    printer: str
    status: str
    weight_g: int | None
    decision: JobDecision
    created_at_ms: int
    updated_at_ms: int
    reprint_of: str | None
    reason: str
    label: bytes
    message: str = ""  # what the packer should do or know (why it is held, where it printed)
    parcel: int = 1  # the parcel's number in its order, from 1
    document: str = DocumentKind.SHIPPING_LABEL.value
    tracking_number: str = ""
    packer: int | None = None  # the packer signed in at the station when the job was made (their id)
    sent_at_ms: int | None = None  # when its bytes went out (None while they have not)

    def answer(self, status: str | None = None) -> PackAnswer:
        """The pack API's answer for this job (`status` overrides, e.g. "already_packed")."""
        return PackAnswer(
            job_id=self.job_id,
            status=status or self.status,
            order_ref=self.order_ref,
            parcel=self.parcel,
            weight_g=self.weight_g,
            carrier=self.decision.carrier,
            service=self.decision.service,
            tracking_number=self.tracking_number,
            template=self.decision.template,
            printer=self.printer,
            message=self.message,
        )

    def details(self) -> dict[str, Any]:
        """Everything `GET /api/v1/jobs/{id}` shows (the label bytes only as their size)."""
        return {
            **self.answer().to_json(),
            "request_id": self.request_id,
            "station": self.station,
            "template_version": self.decision.template_version,
            "document": self.document,
            "dimensions_mm": list(self.decision.dimensions_mm) if self.decision.dimensions_mm else None,
            "sscc": self.decision.sscc,
            "created_at_ms": self.created_at_ms,
            "updated_at_ms": self.updated_at_ms,
            "reprint_of": self.reprint_of,
            "reason": self.reason,
            "label_bytes": len(self.label),
            "packer": self.packer,
            "awaits_number": self.decision.awaits_number or None,
            "sent_at_ms": self.sent_at_ms,
        }

    def parcel_facts(self) -> ParcelFacts:
        """What this job's document tells the cloud about its parcel."""
        return ParcelFacts(
            number=self.parcel,
            document=DocumentKind(self.document),
            tracking_number=self.tracking_number,
            carrier=self.decision.carrier,
            service=self.decision.service,
            weight_g=self.weight_g,
            dimensions_mm=self.decision.dimensions_mm,
            sscc=self.decision.sscc,
        )

    def event_body(self) -> dict[str, Any]:
        """What every outbox event about this job carries (a printed, held, failed or unknown label),
        its parcel's facts included."""
        return {
            "job_id": self.job_id,
            "request_id": self.request_id,
            "weight_g": self.weight_g,
            "carrier": self.decision.carrier,
            "service": self.decision.service,
            "template": self.decision.template,
            "template_version": self.decision.template_version,
            "printer": self.printer,
            "packer": self.packer,
            **self.parcel_facts().to_json(),
        }


@dataclass(frozen=True, slots=True)
class PackAnswer:
    """What a scan or a reprint answers the station: `POST /api/v1/pack`'s body, field for field.

    `status` is the job's (`sent` once its bytes went out, `printed` once the printer confirmed,
    `held`) or `already_packed` for a parcel scanned again.
    """

    job_id: str
    status: str
    order_ref: str
    weight_g: int | None
    carrier: str
    service: str
    template: str
    printer: str
    message: str
    parcel: int = 1
    tracking_number: str = ""

    def to_json(self) -> dict[str, Any]:
        """The answer as the local API sends it (the keys in this order)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "order_ref": self.order_ref,
            "parcel": self.parcel,
            "weight_g": self.weight_g,
            "carrier": self.carrier,
            "service": self.service,
            "tracking_number": self.tracking_number,
            "template": self.template,
            "printer": self.printer,
            "message": self.message,
        }


def log_outcome(logger: logging.Logger, job: Job, outcome: str, detail: str) -> None:
    """One log line per label outcome (printed, held, failed, unknown), with the ids to find it by."""
    ids = {"order_ref": job.order_ref, "job_id": job.job_id, "station": job.station, "printer": job.printer}
    level = logging.INFO if outcome in SENT_OR_PRINTED else logging.WARNING
    logger.log(level, "pack %s: %s%s", outcome, job.order_ref, f" ({detail})" if detail else "", extra=ids)


def _job(row: tuple[Any, ...]) -> Job:
    values = list(row)
    values[7] = JobDecision.from_json(json.loads(values[7]))
    return Job(*values)


class Jobs:
    """Job rows on one store (single statements; callers group them with `store.atomic()`)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Counts inserts, so the pack path can tell cheaply whether any job appeared while it
        # was waiting (for a scale or a printer lane) and only then check again.
        self.written = 0

    def get(self, job_id: str) -> Job | None:
        row = self._store.conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()  # noqa: S608
        return _job(row) if row else None

    def by_request(self, request_id: str) -> Job | None:
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE request_id = ?",  # noqa: S608
            (request_id,),
        ).fetchone()
        return _job(row) if row else None

    def first_for_order(self, order_ref: str) -> Job | None:
        """The order's first (non-reprint) shipping label, of whichever parcel, whatever its status."""
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE order_ref = ? AND reprint_of IS NULL "  # noqa: S608
            "AND document = 'shipping_label' AND status <> 'voided' ORDER BY created_at_ms, rowid LIMIT 1",
            (order_ref,),
        ).fetchone()
        return _job(row) if row else None

    def first_for_parcel(
        self, order_ref: str, parcel: int, document: str = DocumentKind.SHIPPING_LABEL.value
    ) -> Job | None:
        """The first (non-reprint, not voided) job of one document of one parcel, whatever else its status."""
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE order_ref = ? AND parcel = ? AND document = ? "  # noqa: S608
            "AND reprint_of IS NULL AND status <> 'voided' ORDER BY created_at_ms, rowid LIMIT 1",
            (order_ref, parcel, document),
        ).fetchone()
        return _job(row) if row else None

    def parcels_labelled(self, order_ref: str) -> list[int]:
        """The parcels of the order that have a shipping label job (any status), in number order."""
        rows = self._store.conn.execute(
            "SELECT DISTINCT parcel FROM jobs WHERE order_ref = ? AND document = 'shipping_label' "
            "AND reprint_of IS NULL AND status <> 'voided' ORDER BY parcel",
            (order_ref,),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def unconfirmed(self) -> list[Job]:
        """Jobs whose bytes went out and whose printer has not confirmed them: `sent` ones with no
        message yet, and those held in the printer's buffer (at startup, nobody is left to ask)."""
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE (status = 'sent' AND message = '') "  # noqa: S608
            "OR (status = 'held' AND sent_at_ms IS NOT NULL) ORDER BY created_at_ms, rowid"
        ).fetchall()
        return [_job(row) for row in rows]

    def unfinished(self) -> list[Job]:
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'sending' ORDER BY created_at_ms"  # noqa: S608
        ).fetchall()
        return [_job(row) for row in rows]

    def next_held(self, printer: str) -> Job | None:
        """The printer's oldest held job with a label: the next one to go out when it is ready (a job
        awaiting a number is not among them: it has no bytes yet)."""
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'held' AND printer = ? "  # noqa: S608
            f"AND {_NOT_AWAITING} AND {_NOT_SENT} ORDER BY created_at_ms, rowid LIMIT 1",
            (printer,),
        ).fetchone()
        return _job(row) if row else None

    def last_weighed(self, stations: Sequence[str]) -> tuple[int, str, int] | None:
        """The weight, order and parcel of the newest scan job at `stations` that took its weight off the
        scale (not a reprint, not a wave label printed at the expected weight), or None."""
        marks = ",".join("?" * len(stations))
        row = self._store.conn.execute(
            f"SELECT weight_g, order_ref, parcel FROM jobs WHERE station IN ({marks}) "  # noqa: S608
            "AND reprint_of IS NULL AND weight_g IS NOT NULL "
            "AND json_extract(decision, '$.weight_source') IS NULL "
            "ORDER BY created_at_ms DESC, rowid DESC LIMIT 1",
            tuple(stations),
        ).fetchone()
        return (int(row[0]), str(row[1]), int(row[2] or 1)) if row else None

    def held_by_printer(self) -> dict[str, int]:
        """How many jobs wait for each printer (read when the floor changes; the packer counts after).

        Jobs awaiting a number are not counted: they wait for the cloud, not for the printer; nor
        are jobs held in the printer's own buffer (they print there, and are never sent again).
        """
        rows = self._store.conn.execute(
            f"SELECT printer, COUNT(*) FROM jobs WHERE status = 'held' AND {_NOT_AWAITING} "  # noqa: S608
            f"AND {_NOT_SENT} GROUP BY printer"
        ).fetchall()
        return {printer: count for printer, count in rows}

    def held_at(self, station: str) -> list[Job]:
        """The station's held jobs, oldest first: those waiting for a printer and those awaiting a
        leased number (what the station page lists as held labels)."""
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'held' AND station = ? "  # noqa: S608
            "ORDER BY created_at_ms, rowid",
            (station,),
        ).fetchall()
        return [_job(row) for row in rows]

    def awaiting_number(self) -> list[Job]:
        """The jobs held until a leased number comes, oldest first (the order they are released in)."""
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'held' AND NOT {_NOT_AWAITING} "  # noqa: S608
            "ORDER BY created_at_ms, rowid"
        ).fetchall()
        return [_job(row) for row in rows]

    def fill_awaited(self, job: Job) -> None:
        """Give a job awaiting a number its label: bytes, tracking number, decision (with
        `awaits_number` cleared), status (`sending` or `held`) and message, in the caller's
        transaction. Raises (undoing that transaction) unless the job is still awaiting a number:
        a job is filled, and its number taken, once."""
        if job.decision.awaits_number:
            raise ValueError(f"job {job.job_id} is filled with a decision that still awaits a number")
        filled = self._store.conn.execute(
            "UPDATE jobs SET label = ?, tracking_number = ?, decision = ?, status = ?, message = ?, "  # noqa: S608
            f"updated_at_ms = ? WHERE job_id = ? AND status = 'held' AND NOT {_NOT_AWAITING}",
            (
                job.label,
                job.tracking_number,
                json.dumps(job.decision.to_json(), separators=(",", ":")),
                job.status,
                job.message,
                now_ms(),
                job.job_id,
            ),
        ).rowcount
        if filled != 1:
            raise RuntimeError(f"job {job.job_id} no longer awaits a number: nothing recorded")

    def insert(self, job: Job) -> None:
        self.written += 1
        self._store.conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                job.job_id,
                job.request_id,
                job.order_ref,
                job.station,
                job.printer,
                job.status,
                job.weight_g,
                json.dumps(job.decision.to_json(), separators=(",", ":")),
                job.created_at_ms,
                job.updated_at_ms,
                job.reprint_of,
                job.reason,
                job.label,
                job.message,
                job.parcel,
                job.document,
                job.tracking_number,
                job.packer,
                None,  # a new job has not gone out (a reprint made from its original included)
            ),
        )

    def set_status(
        self,
        job_id: str,
        status: JobStatus,
        reason: str | None = None,
        *,
        message: str | None = None,
        sent: bool = False,
    ) -> None:
        """Set a job's status (and reason, message); `sent` also records now as when its bytes went out."""
        now = now_ms()
        sets, values = ["status = ?", "updated_at_ms = ?"], [status.value, now]
        if sent:
            sets.append("sent_at_ms = ?")
            values.append(now)
        if reason is not None:
            sets.append("reason = ?")
            values.append(reason)
        if message is not None:
            sets.append("message = ?")
            values.append(message)
        self._store.conn.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?",  # noqa: S608 -- fixed column names
            (*values, job_id),
        )

    def delete(self, job_id: str) -> None:
        self._store.conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def count_by_status(self) -> dict[str, int]:
        rows = self._store.conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: count for status, count in rows}
