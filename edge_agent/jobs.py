"""Print jobs: one row per label handed (or about to be handed) to a printer.

A job is written `sending` and committed before its bytes go out, so a crash during the send
leaves a trace: on restart such a job becomes `unknown` and a person decides (printing is
at-most-once automatically). `printed` means the printer took every byte; `failed` means the
printer connection broke during the send, so the label may be missing or partial. Neither
`failed` nor `unknown` is ever reprinted without a person asking.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edge_agent.store import Store, now_ms

__all__ = ["Job", "JobStatus", "Jobs", "new_job_id"]

_COLUMNS = (
    "job_id, request_id, order_ref, station, printer, status, weight_g, decision, "
    "created_at_ms, updated_at_ms, reprint_of, reason, label"
)


class JobStatus(StrEnum):
    """Where a job is: see the module docstring."""

    SENDING = "sending"
    PRINTED = "printed"
    FAILED = "failed"
    UNKNOWN = "unknown"


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Job:
    """One label job as stored."""

    job_id: str
    request_id: str | None
    order_ref: str
    station: str
    printer: str
    status: str
    weight_g: int | None
    decision: dict[str, Any]
    created_at_ms: int
    updated_at_ms: int
    reprint_of: str | None
    reason: str
    label: bytes

    def answer(self, status: str | None = None) -> dict[str, Any]:
        """The pack API's answer for this job (`status` overrides, e.g. "already_packed")."""
        return {
            "job_id": self.job_id,
            "status": status or self.status,
            "order_ref": self.order_ref,
            "weight_g": self.weight_g,
            "carrier": self.decision.get("carrier", ""),
            "service": self.decision.get("service", ""),
            "template": self.decision.get("template", ""),
            "printer": self.printer,
        }

    def details(self) -> dict[str, Any]:
        """Everything `GET /api/v1/jobs/{id}` shows (the label bytes only as their size)."""
        return {
            **self.answer(),
            "request_id": self.request_id,
            "station": self.station,
            "template_version": self.decision.get("template_version"),
            "created_at_ms": self.created_at_ms,
            "updated_at_ms": self.updated_at_ms,
            "reprint_of": self.reprint_of,
            "reason": self.reason,
            "label_bytes": len(self.label),
        }


def _job(row: tuple[Any, ...]) -> Job:
    values = list(row)
    values[7] = json.loads(values[7])
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
        """The order's first (non-reprint) job, whatever its status."""
        row = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE order_ref = ? AND reprint_of IS NULL "  # noqa: S608
            "ORDER BY created_at_ms, rowid LIMIT 1",
            (order_ref,),
        ).fetchone()
        return _job(row) if row else None

    def unfinished(self) -> list[Job]:
        rows = self._store.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'sending' ORDER BY created_at_ms"  # noqa: S608
        ).fetchall()
        return [_job(row) for row in rows]

    def insert(self, job: Job) -> None:
        self.written += 1
        self._store.conn.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                job.job_id,
                job.request_id,
                job.order_ref,
                job.station,
                job.printer,
                job.status,
                job.weight_g,
                json.dumps(job.decision, separators=(",", ":")),
                job.created_at_ms,
                job.updated_at_ms,
                job.reprint_of,
                job.reason,
                job.label,
            ),
        )

    def set_status(self, job_id: str, status: JobStatus, reason: str | None = None) -> None:
        if reason is None:
            self._store.conn.execute(
                "UPDATE jobs SET status = ?, updated_at_ms = ? WHERE job_id = ?",
                (status.value, now_ms(), job_id),
            )
        else:
            self._store.conn.execute(
                "UPDATE jobs SET status = ?, reason = ?, updated_at_ms = ? WHERE job_id = ?",
                (status.value, reason, now_ms(), job_id),
            )

    def delete(self, job_id: str) -> None:
        self._store.conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def count_by_status(self) -> dict[str, int]:
        rows = self._store.conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {status: count for status, count in rows}
