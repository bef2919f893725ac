"""Leased tracking numbers: taken in the transaction of the job that prints them, never twice.

For a carrier account whose numbers come from carrier-issued ranges (`range`) or from the
tenant's GS1 company prefix (`sscc`), the cloud leases each agent blocks of serials ahead of need
(`ChangeKind.NUMBER_LEASE`, synced like any other change), so packing goes on offline. The agent
takes the next serial of its own lease inside the transaction that inserts the job, and writes
`number_used` to the outbox in that same transaction: a number exists in `numbers_taken` if and
only if a job took it (a crash before the commit takes nothing; after it, the job and its number
are both there).

A serial is never issued twice:

- the next serial is one past the highest this agent ever took from the lease (`numbers_taken` is
  local: a snapshot replaces the leases, never what was taken), and past the lease's
  `used_through`, the highest the cloud has seen used from it; so an agent whose database was
  restored from an older backup, which no longer knows what it took since, starts above what the
  cloud heard of before the restore (numbers taken after the backup and not yet sent are lost
  with the outbox: the cloud's `tracking_numbers` table, unique per carrier and number, shows
  any such number used twice);
- a job that ends `unknown` or `failed` (or is forgotten because nothing was sent) voids its
  number (`void`, `number_voided`) in the transaction that marks the job: it is not reused;
- a lease is used only by the agent it names, and not at all once `retired`: by the cloud, or
  here (`leases_retired`, local facts no snapshot replaces). `dockside-agent restore` retires every
  lease the restored database held, with one `lease_retired` event each, so a restore can never
  issue a number twice: the numbers taken after the backup all lie in leases now retired, and the
  agent packs on with the fresh blocks the cloud leases it.

Out of numbers (one `exception_raised` for a person each time, until numbers come back:
`note_exhausted`), a scanned pack holds its label: the job is recorded `held`, awaiting a number
of that carrier, with a message for the packer, and prints by itself when the cloud leases more
(`edge_agent.packing.awaiting.AwaitingLabels.release_awaiting`). A wave stops at that order, and a reprint
that needs a new number is refused (`NumbersExhausted`): both are a person's explicit action.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockside.errors import Conflict
from dockside.shipping.sscc import sscc18
from dockside.shipping.tracking import NumberFormat, format_number
from dockside.sync import EventKind
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox

__all__ = [
    "RESTORED_REASON",
    "Numbers",
    "NumbersExhausted",
    "TakenNumber",
    "exhausted_error",
    "retire_all_leases",
]

log = logging.getLogger(__name__)


RESTORED_REASON = "restored from backup"


def retire_all_leases(store: Store, outbox: Outbox, reason: str = RESTORED_REASON) -> list[dict[str, Any]]:
    """Retire every number lease `store` holds, here for good, each with one `lease_retired` event
    `{"lease_id", "carrier", "reason"}` for the cloud; the bodies recorded, oldest lease first.

    One transaction: after it no number is ever taken from a lease the database held.
    """
    retired = []
    with store.atomic():
        rows = store.conn.execute(
            "SELECT id, body FROM number_leases WHERE id NOT IN (SELECT lease_id FROM leases_retired) "
            "ORDER BY id"
        ).fetchall()
        # Leases a number was taken from but the cache no longer lists are retired too.
        known = {int(row[0]) for row in rows}
        orphans = store.conn.execute(
            "SELECT DISTINCT lease_id, carrier FROM numbers_taken "
            "WHERE lease_id NOT IN (SELECT lease_id FROM leases_retired) ORDER BY lease_id"
        ).fetchall()
        leases = [(int(row[0]), str(json.loads(row[1]).get("carrier", ""))) for row in rows]
        leases += [(int(lease_id), str(carrier)) for lease_id, carrier in orphans if lease_id not in known]
        at = now_ms()
        for lease_id, carrier in sorted(leases):
            store.conn.execute(
                "INSERT INTO leases_retired (lease_id, reason, at_ms) VALUES (?, ?, ?)",
                (lease_id, reason, at),
            )
            body = {"lease_id": lease_id, "carrier": carrier, "reason": reason}
            outbox.record(EventKind.LEASE_RETIRED, body)
            retired.append(body)
    return retired


@dataclass(frozen=True, slots=True)
class TakenNumber:
    """One serial of a lease and the number it prints as (a tracking number, or an SSCC)."""

    lease_id: int
    carrier: str
    kind: str  # "range" or "sscc", the lease's
    serial: int
    tracking_number: str

    def event_body(self, job_id: str) -> dict[str, Any]:
        """The body of `number_used` (and, with a reason, `number_voided`)."""
        return {
            "lease_id": self.lease_id,
            "carrier": self.carrier,
            "serial": self.serial,
            "tracking_number": self.tracking_number,
            "job_id": job_id,
        }


class NumbersExhausted(Conflict):
    """This agent has no leased number of `carrier` left (a wave stops, a reprint is refused, a
    scanned pack holds its label until more come)."""

    code = "tracking_numbers_exhausted"

    def __init__(self, message: str, *, carrier: str) -> None:
        super().__init__(message)
        self.carrier = carrier


def exhausted_error(carrier: str) -> NumbersExhausted:
    """The refusal when this agent has no number left for `carrier`."""
    return NumbersExhausted(
        f"this agent has used every {carrier} tracking number it was given; connect it to the cloud "
        "to get more, or pack with another carrier",
        carrier=carrier,
    )


class Numbers:
    """Takes, voids and counts this agent's leased numbers (on the store's one connection)."""

    def __init__(self, store: Store, cache: Cache, outbox: Outbox) -> None:
        self._store = store
        self._cache = cache
        self._outbox = outbox
        self._agent_id: str | None = None
        self._formats: dict[int, tuple[Mapping[str, Any], NumberFormat]] = {}
        self._reported_exhausted: set[str] = set()

    @property
    def store(self) -> Store:
        """The store numbers are taken on (the agent's one connection)."""
        return self._store

    def _own_agent(self) -> str:
        """This agent's id, from its identity (read once it exists)."""
        if self._agent_id is None:
            row = self._store.conn.execute("SELECT agent_id FROM identity WHERE id = 1").fetchone()
            if row is None:
                return ""
            self._agent_id = str(row[0])
        return self._agent_id

    def _leases(self, carrier: str) -> list[dict[str, Any]]:
        """This agent's usable leases for `carrier`, oldest first (the cache checked their bodies)."""
        agent_id = self._own_agent()
        leases = [
            lease
            for _, lease in sorted(self._cache.number_leases.items())
            if lease.get("agent_id") == agent_id
            and lease.get("carrier") == carrier
            and not lease.get("retired", False)
        ]
        if not leases:
            return leases
        retired_here = {
            int(row[0])
            for row in self._store.conn.execute(
                "SELECT lease_id FROM leases_retired WHERE lease_id IN (SELECT value FROM json_each(?))",
                (json.dumps([int(lease["id"]) for lease in leases]),),
            )
        }
        return [lease for lease in leases if int(lease["id"]) not in retired_here] if retired_here else leases

    def _next_serial(self, lease: Mapping[str, Any]) -> int:
        """The lowest serial of `lease` above every serial taken from it here and above `used_through`."""
        highest = self._store.conn.execute(
            "SELECT MAX(serial) FROM numbers_taken WHERE lease_id = ?", (lease["id"],)
        ).fetchone()[0]
        floor = int(lease["first"]) - 1
        used_through = lease.get("used_through")
        for seen in (highest, used_through):
            if seen is not None and int(seen) > floor:
                floor = int(seen)
        return floor + 1

    def _format(self, lease: Mapping[str, Any], serial: int) -> str:
        fmt = lease["format"]
        if lease["kind"] == "sscc":
            return sscc18(str(fmt["company_prefix"]), int(fmt.get("extension", 0)), serial)
        held = self._formats.get(int(lease["id"]))
        if held is None or held[0] is not fmt:
            held = self._formats[int(lease["id"])] = (fmt, NumberFormat(**fmt))
        return format_number(held[1], serial)

    def next_number(self, carrier: str) -> TakenNumber | None:
        """The number `take` would give now (nothing written), or None when none is left."""
        for lease in self._leases(carrier):
            serial = self._next_serial(lease)
            if serial <= int(lease["last"]):
                self._reported_exhausted.discard(carrier)
                return TakenNumber(
                    int(lease["id"]), carrier, str(lease["kind"]), serial, self._format(lease, serial)
                )
        return None

    def take(
        self, carrier: str, job_id: str, *, order_ref: str = "", station: str = "", parcel: int | None = None
    ) -> TakenNumber | None:
        """Take the next number for `carrier` for `job_id`; None when none is left.

        Call inside the transaction that inserts the job: the number and its `number_used`
        event are written there, so they exist exactly when the job does. The event names the
        job's `parcel` when given (the cloud files the number under the order's parcel).
        """
        taken = self.next_number(carrier)
        if taken is None:
            return None
        self._store.conn.execute(
            "INSERT INTO numbers_taken (lease_id, serial, carrier, tracking_number, job_id, state, at_ms) "
            "VALUES (?, ?, ?, ?, ?, 'used', ?)",
            (taken.lease_id, taken.serial, carrier, taken.tracking_number, job_id, now_ms()),
        )
        body = taken.event_body(job_id)
        if parcel is not None:
            body["parcel"] = parcel
        self._outbox.record(EventKind.NUMBER_USED, body, order_ref=order_ref, station=station)
        return taken

    def void(
        self, job_id: str, reason: str, *, order_ref: str = "", station: str = "", parcel: int | None = None
    ) -> list[TakenNumber]:
        """Void the numbers `job_id` took (never to be used again), each with `number_voided`.

        Call inside the transaction that marks the job unknown or failed (or forgets it).
        """
        rows = self._store.conn.execute(
            "UPDATE numbers_taken SET state = 'voided', at_ms = ? WHERE job_id = ? AND state = 'used' "
            "RETURNING lease_id, carrier, serial, tracking_number",
            (now_ms(), job_id),
        ).fetchall()
        voided = []
        for lease_id, carrier, serial, tracking_number in rows:
            number = TakenNumber(int(lease_id), str(carrier), "", int(serial), str(tracking_number))
            body = {**number.event_body(job_id), "reason": reason}
            if parcel is not None:
                body["parcel"] = parcel
            self._outbox.record(EventKind.NUMBER_VOIDED, body, order_ref=order_ref, station=station)
            voided.append(number)
        return voided

    def voided_of(self, job_id: str) -> list[TakenNumber]:
        """The numbers `job_id` took and that were voided since (a reprint labels anew)."""
        rows = self._store.conn.execute(
            "SELECT lease_id, carrier, serial, tracking_number FROM numbers_taken "
            "WHERE job_id = ? AND state = 'voided' ORDER BY serial",
            (job_id,),
        ).fetchall()
        return [TakenNumber(int(row[0]), str(row[1]), "", int(row[2]), str(row[3])) for row in rows]

    def remaining(self, carrier: str) -> int:
        """How many numbers this agent can still take for `carrier` (offline, from its leases)."""
        return sum(
            max(0, int(lease["last"]) - self._next_serial(lease) + 1) for lease in self._leases(carrier)
        )

    def status(self) -> dict[str, int]:
        """Numbers left per carrier this agent holds a lease of (`GET /api/v1/status`)."""
        agent_id = self._own_agent()
        carriers = {
            str(lease["carrier"])
            for lease in self._cache.number_leases.values()
            if lease.get("agent_id") == agent_id
        }
        return {carrier: self.remaining(carrier) for carrier in sorted(carriers)}

    def report_exhausted(self, carrier: str, *, order_ref: str = "", station: str = "") -> NumbersExhausted:
        """The refusal for a wave or reprint that found no number left for `carrier` (for the
        caller to raise), reported as `note_exhausted` does."""
        self.note_exhausted(carrier, order_ref=order_ref, station=station)
        return exhausted_error(carrier)

    def note_exhausted(self, carrier: str, *, order_ref: str = "", station: str = "") -> None:
        """Tell a person this agent has no number of `carrier` left: the first time (until numbers
        come back, `next_number` finds one), an `exception_raised` and an error in the log; later
        times nothing. Its own transaction (a savepoint inside the caller's)."""
        if carrier in self._reported_exhausted:
            return
        self._reported_exhausted.add(carrier)
        error = exhausted_error(carrier)
        body = {
            "reason": "tracking_numbers_exhausted",
            "code": error.code,
            "carrier": carrier,
            "message": error.message,
        }
        with self._store.atomic():
            self._outbox.record(EventKind.EXCEPTION_RAISED, body, order_ref=order_ref, station=station)
        self._outbox.notify()
        log.error(
            "no %s tracking number left at this agent: packs with %s hold their labels, and waves "
            "and relabels stop, until the cloud leases more",
            carrier,
            carrier,
            extra={"order_ref": order_ref, "station": station},
        )
