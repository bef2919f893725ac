"""What is done to a parcel after its pack: close the order, void a label, hand a parcel over.

`close` ends an order with fewer parcels than the OMS expected (`POST /api/v1/orders/{ref}/close`).
The close is kept at the agent (`orders_closed`, in its event's transaction): a later pack of a
parcel with no label is refused (`order_closed`), and a second close answers the first.

`void_parcel` voids a parcel's shipping label on purpose (`POST /api/v1/orders/{ref}/parcels/{n}/void`):
its job (and its reprints) stay for history with status `voided`, the leased numbers they took
are voided (`number_voided`), and `parcel_voided` tells the cloud; packing the parcel again prints
a new label with a new number (relabel), never the voided one. A label the cloud voided
(the order's `voided_parcels`) is voided here the same way, without telling the cloud back
(`apply_cloud_voids`, asked by the pack and the reprint before they look at a parcel's label).

`hand_over` is the dock station's scan (`POST /api/v1/handover`): the parcel whose label carries
the scanned tracking number or SSCC is recorded handed over once (`parcel_handed_over`).

What one order's actions do runs under its order lock (`edge_agent.packing.order_locks`), the
one the pack holds. `packer_reason` bounds the reason a packer gives here and for a reprint.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from dockside.errors import Conflict, DocksideError, InputError, NotFound
from dockside.orders import SyncedOrder
from dockside.shipping.parcels import MAX_PARCELS
from dockside.sync import EventKind
from edge_agent.devices.stations import StationFloor
from edge_agent.packing.order_locks import OrderLocks
from edge_agent.printing.jobs import SENT_OR_PRINTED, JobStatus
from edge_agent.printing.queue import PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import now_ms
from edge_agent.store.outbox import Outbox

__all__ = [
    "CLOUD_VOID_REASON",
    "ParcelActions",
    "cloud_voided_parcels",
    "packer_reason",
    "scanned_number",
]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
# What a dock scan may carry: a tracking number or SSCC, after the scanner's decorations go.
_SCANNED_NUMBER = re.compile(r"^[A-Z0-9]{1,40}$")
# A GS1-128 scan of an SSCC: symbology identifier ]C1, then AI 00 (with or without brackets).
_GS1_SSCC = re.compile(r"^(?:\]C1)?(?:\(00\)|00)([0-9]{18})$")
# Documents whose number a dock worker scans: the shipping label, and a carton label's SSCC.
_HANDOVER_DOCUMENTS = ("shipping_label", "carton_label")


def scanned_number(scan: str) -> str:
    """The tracking number or SSCC a dock scan carries (upper case, no spaces, no GS1 AI 00);
    InputError when it cannot be one."""
    text = "".join(scan.split()).upper()
    sscc = _GS1_SSCC.match(text)
    if sscc is not None:
        return sscc.group(1)
    if not _SCANNED_NUMBER.match(text):
        raise InputError(
            "that scan is not a tracking number or an SSCC (1 to 40 letters and digits): scan the "
            "barcode of the carrier's tracking number or the carton's SSCC on the label",
            code="invalid_scan",
        )
    return text


CLOUD_VOID_REASON = "voided in the cloud"
MAX_TRACKING_CHARS = 40  # an ExpectedParcel tracking number; an SSCC is 18


def cloud_voided_parcels(cloud_fields: Mapping[str, Any]) -> list[tuple[int, str]]:
    """`(parcel, tracking_number)` of the order's `voided_parcels` as the cloud syncs them, read
    leniently: entries that are not `{"parcel": 1..99, "tracking_number": "<text>"}` (the old
    bare numbers included) are skipped, as are over-long numbers."""
    entries = cloud_fields.get("voided_parcels")
    if not isinstance(entries, list):
        return []
    found: list[tuple[int, str]] = []
    for entry in entries[: MAX_PARCELS * 10]:
        if not isinstance(entry, Mapping):
            continue
        number, tracking = entry.get("parcel"), entry.get("tracking_number")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_PARCELS:
            continue
        if not isinstance(tracking, str) or not 0 < len(tracking.strip()) <= MAX_TRACKING_CHARS:
            continue
        found.append((number, tracking.strip().upper()))
    return found


class ParcelActions:
    """Closes orders, voids parcels' labels and hands parcels over, for the stations of one agent."""

    def __init__(
        self,
        cache: Cache,
        floor: StationFloor,
        queue: PrintQueue,
        outbox: Outbox,
        order_locks: OrderLocks,
        *,
        packer_at: Callable[[str], int | None] = lambda _station: None,
    ) -> None:
        self._cache = cache
        # The packer signed in at a station (their id), for the events recorded there.
        self._packer_at = packer_at
        self._floor = floor
        self._queue = queue
        self._outbox = outbox
        self._order_locks = order_locks
        self.jobs = queue.jobs

    # -- close -----------------------------------------------------------------------------------

    async def close(self, order_ref: str, reason: str = "") -> dict[str, Any]:
        """End an order with the parcels labelled so far (`POST /api/v1/orders/{ref}/close`).

        Records `order_closed` with how many parcels were labelled, and keeps the close here in
        the same transaction; refuses an order this agent does not know or one with no labelled
        parcel (pack parcel 1 first). Closing a closed order answers its first close again.
        """
        reason = packer_reason(reason)
        async with self._order_locks.hold(order_ref):
            order = self._cache.order(order_ref)
            if order is None:
                raise NotFound(
                    f"order {order_ref} is not known at this agent: check the reference, or wait a "
                    "moment for the agent to sync from the cloud",
                    code="order_not_found",
                    params={"order_ref": order_ref},
                )
            earlier = self.closed(order_ref)
            if earlier is not None:
                return _closed_answer(order_ref, earlier[0], order, earlier[1], earlier[2])
            parcels = self.jobs.parcels_labelled(order_ref)
            if not parcels:
                raise Conflict(
                    f"order {order_ref} has no labelled parcel to close with: pack its parcels "
                    "first, or cancel the order in the cloud if it does not ship",
                    code="nothing_labelled",
                    params={"order_ref": order_ref},
                )
            # The close names no station: the packer is the one at the station of the order's label.
            first = self.jobs.first_for_order(order_ref)
            station = first.station if first is not None else ""
            body = {"parcels": len(parcels), "reason": reason, "packer": self._packer_at(station)}
            store = self._queue.numbers.store
            at = now_ms()
            with store.atomic():
                store.conn.execute(
                    "INSERT INTO orders_closed (order_ref, parcels, reason, at_ms) VALUES (?, ?, ?, ?)",
                    (order_ref, len(parcels), reason, at),
                )
                self._outbox.record(EventKind.ORDER_CLOSED, body, order_ref=order_ref, station=station)
        self._outbox.notify()
        log.info("order %s closed with %d parcel(s)", order_ref, len(parcels), extra={"order_ref": order_ref})
        return _closed_answer(order_ref, len(parcels), order, reason, at)

    def closed(self, order_ref: str) -> tuple[int, str, int] | None:
        """(parcels, reason, at_ms) of the order's close at this agent, or None if it is open."""
        row = self._queue.numbers.store.conn.execute(
            "SELECT parcels, reason, at_ms FROM orders_closed WHERE order_ref = ?", (order_ref,)
        ).fetchone()
        return (int(row[0]), str(row[1]), int(row[2])) if row is not None else None

    def refuse_if_closed(self, order_ref: str) -> None:
        """Conflict `order_closed` when the packer closed the order: a parcel with no label yet
        gets none (the caller answers an already-labelled parcel first)."""
        closed = self.closed(order_ref)
        if closed is not None:
            raise Conflict(
                f"order {order_ref} was closed with {closed[0]} parcel(s): do not ship this parcel; "
                "set it aside and ask your supervisor",
                code="order_closed",
                params={"order_ref": order_ref},
            )

    # -- void -----------------------------------------------------------------------------------

    async def void_parcel(self, order_ref: str, parcel: int, reason: str) -> dict[str, Any]:
        """Void parcel `parcel`'s shipping label (`POST /api/v1/orders/{ref}/parcels/{n}/void`).

        In one transaction: the label's job and its reprints get status `voided` (kept for
        history), the leased numbers they took are voided (`number_voided`, never used again) and
        `parcel_voided` `{parcel, tracking_number, reason}` is recorded. The next pack of the
        parcel prints a new label with a new number. Refused: no reason, an unknown order, a
        parcel with no label (or one already voided), a label still printing, a parcel handed over.
        """
        reason = packer_reason(
            reason,
            required="voiding a label needs a reason (for example 'address changed'): type why it is voided",
        )
        if isinstance(parcel, bool) or not 1 <= parcel <= MAX_PARCELS:
            raise InputError(f"parcels are numbered 1 to {MAX_PARCELS}, not {parcel}", code="invalid_input")
        async with self._order_locks.hold(order_ref):
            return self._void(order_ref, parcel, reason)

    def _void(self, order_ref: str, parcel: int, reason: str, *, tell_cloud: bool = True) -> dict[str, Any]:
        store = self._queue.numbers.store
        label = self.jobs.first_for_parcel(order_ref, parcel)
        if label is None:
            known = (
                self._cache.order(order_ref) is not None
                or store.conn.execute(
                    "SELECT 1 FROM jobs WHERE order_ref = ? LIMIT 1", (order_ref,)
                ).fetchone()
            )
            if not known:
                raise NotFound(
                    f"order {order_ref} is not known at this agent: check the reference",
                    code="order_not_found",
                    params={"order_ref": order_ref},
                )
            was_voided = store.conn.execute(
                "SELECT 1 FROM jobs WHERE order_ref = ? AND parcel = ? AND document = 'shipping_label' "
                "AND status = 'voided' LIMIT 1",
                (order_ref, parcel),
            ).fetchone()
            if was_voided is not None:
                raise Conflict(
                    f"parcel {parcel} of order {order_ref} has no label to void: its label was voided "
                    "already; pack the parcel again to print its new label",
                    code="already_voided",
                    params={"order_ref": order_ref, "parcel": parcel},
                )
            raise Conflict(
                f"parcel {parcel} of order {order_ref} has no label to void: nothing was printed for it",
                code="parcel_not_labelled",
                params={"order_ref": order_ref, "parcel": parcel},
            )
        rows = store.conn.execute(
            "SELECT job_id, status, tracking_number FROM jobs WHERE job_id = ? OR reprint_of = ? "
            "ORDER BY created_at_ms, rowid",
            (label.job_id, label.job_id),
        ).fetchall()
        if any(status in (JobStatus.SENDING, JobStatus.HELD) for _, status, _ in rows):
            raise Conflict(
                f"parcel {parcel} of order {order_ref} has a label printing or waiting for its printer: "
                "wait for it to finish (or clear the printer), then void it",
                code="job_in_flight",
                params={"order_ref": order_ref, "parcel": parcel},
            )
        handed = store.conn.execute(
            "SELECT 1 FROM handovers WHERE order_ref = ? AND parcel = ? LIMIT 1", (order_ref, parcel)
        ).fetchone()
        if handed is not None:
            raise Conflict(
                f"parcel {parcel} of order {order_ref} was handed over to the carrier: it cannot be "
                "voided here; void it with the carrier, then in the cloud",
                code="parcel_handed_over",
                params={"order_ref": order_ref, "parcel": parcel},
            )
        # The number on the parcel: the newest printed label's (a relabel-reprint took a new one).
        printed = [number for _, status, number in rows if status in SENT_OR_PRINTED and number]
        tracking = printed[-1] if printed else label.tracking_number
        with store.atomic():
            for job_id, _, _ in rows:
                self.jobs.set_status(job_id, JobStatus.VOIDED, message=f"voided: {reason}")
                self._queue.numbers.void(
                    job_id, reason, order_ref=order_ref, station=label.station, parcel=parcel
                )
            if tell_cloud:  # not for a void the cloud asked for: it knows
                body = {
                    "parcel": parcel,
                    "tracking_number": tracking,
                    "reason": reason,
                    "packer": self._packer_at(label.station),
                }
                self._outbox.record(EventKind.PARCEL_VOIDED, body, order_ref=order_ref, station=label.station)
        self._outbox.notify()
        log.info(
            "parcel %d of order %s voided (tracking number %s): %s",
            parcel,
            order_ref,
            tracking,
            reason,
            extra={"order_ref": order_ref, "station": label.station},
        )
        return {
            "order_ref": order_ref,
            "parcel": parcel,
            "status": "voided",
            "job_id": label.job_id,
            "tracking_number": tracking,
            "reason": reason,
        }

    def apply_cloud_voids(self, order_ref: str, order: SyncedOrder, parcel: int) -> None:
        """Void this agent's label of `parcel` if the cloud voided exactly that label.

        The order's `voided_parcels` names `{"parcel", "tracking_number"}`; only a label whose
        number is the one named is voided (a stale entry never voids a newer label). Read
        leniently: malformed entries and the old `[n]` shape are ignored. Same path as a local
        void (job voided, leased number `number_voided`), without `parcel_voided` back.
        """
        for number, tracking in cloud_voided_parcels(order.cloud_fields):
            if number != parcel:
                continue
            label = self.jobs.first_for_parcel(order_ref, parcel)
            if label is None:
                return
            if tracking not in self._label_numbers(label.job_id):
                continue
            try:
                self._void(order_ref, parcel, CLOUD_VOID_REASON, tell_cloud=False)
            except DocksideError as exc:  # still printing, or handed over: left as it is
                log.warning(
                    "parcel %d of order %s was voided in the cloud but not here: %s",
                    parcel,
                    order_ref,
                    exc.message,
                    extra={"order_ref": order_ref},
                )
            return

    def _label_numbers(self, job_id: str) -> list[str]:
        """The tracking number on the parcel: the newest printed one of the job and its reprints."""
        rows = self._queue.numbers.store.conn.execute(
            "SELECT status, tracking_number FROM jobs WHERE job_id = ? OR reprint_of = ? "
            "ORDER BY created_at_ms, rowid",
            (job_id, job_id),
        ).fetchall()
        printed = [number for status, number in rows if status in SENT_OR_PRINTED and number]
        return printed[-1:] if printed else [number for _, number in rows[:1] if number]

    # -- dock handover ---------------------------------------------------------------------------

    def hand_over(self, scan: str, station_code: str, request_id: str) -> dict[str, Any]:
        """Record the parcel whose label carries the scanned number as handed over, once
        (`POST /api/v1/handover`): `handed_over`, or `already_handed_over` for a second scan.

        The parcel is found among this agent's printed labels by tracking number (or a carton
        label's SSCC); a voided label is refused, an unknown number is NotFound for the dock worker.
        """
        if self._floor.get(station_code) is None:
            raise NotFound(
                f"station {station_code} is not configured for this warehouse: check the station code",
                code="station_not_found",
            )
        store = self._queue.numbers.store
        repeated = store.conn.execute(
            "SELECT order_ref, parcel, tracking_number, carrier, station, at_ms FROM handovers "
            "WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if repeated is not None:
            return _handover_answer("handed_over", *repeated)
        number = scanned_number(scan)
        found = self._labelled_parcel(number)
        order_ref, parcel, carrier = found
        existing = store.conn.execute(
            "SELECT order_ref, parcel, tracking_number, carrier, station, at_ms FROM handovers "
            "WHERE order_ref = ? AND parcel = ?",
            (order_ref, parcel),
        ).fetchone()
        if existing is not None:
            return _handover_answer("already_handed_over", *existing)
        at = now_ms()
        with store.atomic():
            store.conn.execute(
                "INSERT INTO handovers (order_ref, parcel, tracking_number, carrier, station, at_ms, "
                "request_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (order_ref, parcel, number, carrier, station_code, at, request_id),
            )
            self._outbox.record(
                EventKind.PARCEL_HANDED_OVER,
                {"parcel": parcel, "tracking_number": number, "carrier": carrier},
                order_ref=order_ref,
                station=station_code,
            )
        self._outbox.notify()
        log.info(
            "parcel %d of order %s (%s %s) handed over at %s",
            parcel,
            order_ref,
            carrier,
            number,
            station_code,
            extra={"order_ref": order_ref, "station": station_code},
        )
        return _handover_answer("handed_over", order_ref, parcel, number, carrier, station_code, at)

    def _labelled_parcel(self, number: str) -> tuple[str, int, str]:
        """(order_ref, parcel, carrier) of the printed label carrying `number`."""
        conn = self._queue.numbers.store.conn
        documents = json.dumps(_HANDOVER_DOCUMENTS)
        rows = conn.execute(
            "SELECT order_ref, parcel, status, json_extract(decision, '$.carrier') FROM jobs "
            "WHERE tracking_number = ? AND document IN (SELECT value FROM json_each(?)) "
            "ORDER BY created_at_ms DESC, rowid DESC",
            (number, documents),
        ).fetchall()
        if not rows:  # a carton label's own SSCC (not the parcel's tracking number)
            rows = conn.execute(
                "SELECT order_ref, parcel, status, json_extract(decision, '$.carrier') FROM jobs "
                "WHERE document = 'carton_label' AND json_extract(decision, '$.sscc') = ? "
                "ORDER BY created_at_ms DESC, rowid DESC",
                (number,),
            ).fetchall()
        printed = [row for row in rows if row[2] in SENT_OR_PRINTED]
        if printed:
            order_ref, parcel, _, carrier = printed[0]
            return str(order_ref), int(parcel), str(carrier or "")
        if any(row[2] == JobStatus.VOIDED for row in rows):
            raise Conflict(
                f"the label {number} was voided: do not ship this parcel with it; set it aside for "
                "relabelling",
                code="label_voided",
            )
        if rows:
            raise Conflict(
                f"the label {number} did not print for sure (job {rows[0][2]}): set the parcel aside "
                "for your supervisor",
                code="label_not_printed",
            )
        raise NotFound(
            f"no parcel with the number {number} was labelled at this agent: scan the tracking "
            "number barcode on the shipping label (not the order barcode), or set the parcel aside "
            "for your supervisor",
            code="parcel_not_found",
        )


def _handover_answer(
    status: str, order_ref: str, parcel: int, tracking: str, carrier: str, station: str, at_ms: int
) -> dict[str, Any]:
    return {
        "status": status,
        "order_ref": order_ref,
        "parcel": int(parcel),
        "tracking_number": tracking,
        "carrier": carrier,
        "station": station,
        "handed_over_at_ms": int(at_ms),
    }


def _closed_answer(
    order_ref: str, parcels: int, order: SyncedOrder, reason: str, at_ms: int
) -> dict[str, Any]:
    return {
        "order_ref": order_ref,
        "status": "closed",
        "parcels": parcels,
        "expected": _expected(order),
        "reason": reason,
        "closed_at_ms": at_ms,
    }


def _expected(order: SyncedOrder) -> int:
    """How many parcels the OMS expects for the order (one when it did not say)."""
    return max(1, len(order.order.parcels))


def packer_reason(reason: str, *, required: str = "") -> str:
    """A packer's reason, stripped and bounded; `required` is the message when it may not be empty."""
    reason = reason.strip()
    if required and not reason:
        raise InputError(required, code="reason_required")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(
            f"the reason is {len(reason)} characters long: keep it under {MAX_REASON_CHARS}",
            code="reason_too_long",
        )
    return reason
