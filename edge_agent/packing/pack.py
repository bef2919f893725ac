"""The pack decision: scan -> order -> stable weight -> rules -> label -> the print queue -> answer.

Everything here is local (no call to the cloud, ever) and runs on the agent's event loop with
its single SQLite connection: the database work is a few statements of tens of microseconds
each, cheaper inline than a hop to a worker thread, and running on the loop means the watch
loop and the outbox sender, which use the same connection, can never interleave with a pack's
transaction. Only the slow, blocking device work leaves the loop: the bytes go out through the
printer's own lane thread, and a scale that has no fresh stable weight is waited for in a
thread.

The packer decides whether and what to print; the print queue (`edge_agent.printing.queue`)
prints it: hold or send, at most once, events in the job's transaction, fallback routing. An
order ships as one or more parcels, and a pack names its parcel (default 1): the same request
id returns the first job; a parcel that already has its shipping label answers `already_packed`
with it (parcel 2 of an order packs whatever became of parcel 1); a cancelled order prints
nothing. `close` ends an order with fewer parcels than the OMS expected.

`void_parcel` voids a parcel's shipping label on purpose (`POST /api/v1/orders/{ref}/parcels/{n}/void`):
its job (and its reprints) stay for history with status `voided`, the leased numbers they took
are voided (`number_voided`), and `parcel_voided` tells the cloud; packing the parcel again prints
a new label with a new number (relabel), never the voided one. `hand_over` is the dock station's
scan (`POST /api/v1/handover`): the parcel whose label carries the scanned tracking number or
SSCC is recorded handed over once (`parcel_handed_over`).

The tracking number comes from the decided carrier's account (`carriers` in the cache): a
leased number (`range`, `sscc`) is taken in the job's transaction (`edge_agent.store.numbers`).
With none left the parcel is still packed (its weight spent): its label is recorded `held`,
awaiting a number, with a message for the packer, and its documents wait with it; when the
cloud leases more (and at start) `release_awaiting` prints it by itself, then its documents. The
OMS's (`oms`, `api`) is the order's
`parcels[n - 1].tracking_number`, refused while it has not come; without an account the label
carries the job-id reference, as before.

A weight serves one parcel: the pack claims the scale's stable weight for its order, and the
next pack at that scale waits (up to `scale_wait_s`) for a new parcel to settle on it, then
says what to do ("put the parcel for order B on the scale at S1: the weight it shows, 1,234 g,
was already used for order A"). A pack that records no job gives its weight back. Reprints
reuse their job's weight and never touch the scale.

Printer faults never cost a status round trip on the pack path: the scheduler polls every
printer (`~HS`, DLE EOT) every second or so and the print queue reads the lane's last known
state. Labels render within their budget (`edge_agent.packing.labelling`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dockside.errors import Conflict, DocksideError, InputError, NotFound, PrinterError, PrinterUnusable
from dockside.orders import SyncedOrder
from dockside.rules import Decision, decide
from dockside.shipping.parcels import MAX_PARCELS, DocumentKind, LabelDocument, TrackingKind
from dockside.sync import EventKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.scale_reader import ScaleReader, UsedWeight
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.documents import DocumentPlan, expected_parcel, plan_documents, shipping_label_plan
from edge_agent.packing.labelling import Labeller
from edge_agent.printing.jobs import Job, JobStatus, PackAnswer, log_outcome, new_job_id
from edge_agent.printing.queue import REPRINTED_EVENTS, PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import now_ms
from edge_agent.store.numbers import Numbers, NumbersExhausted, TakenNumber
from edge_agent.store.outbox import Outbox

__all__ = [
    "PACKED_EVENTS",
    "Packer",
    "cloud_voided_parcels",
    "document_number",
    "scanned_number",
    "tracking_source",
]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
# What a scan that prints records, in the transaction that marks its job printed.
PACKED_EVENTS = (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)
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


@dataclasses.dataclass
class _OrderLock:
    """Serialises the scans of one order; dropped when no scan of it is running or waiting."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class Packer:
    """Decides and records the packs and reprints of the stations of one agent; the print queue prints."""

    def __init__(
        self,
        cache: Cache,
        floor: StationFloor,
        queue: PrintQueue,
        labeller: Labeller,
        outbox: Outbox,
        metrics: AgentMetrics,
        *,
        scale_wait_s: float = 3.0,
    ) -> None:
        self._cache = cache
        self._floor = floor
        self._queue = queue
        self._labeller = labeller
        self._outbox = outbox
        self._metrics = metrics
        self.jobs = queue.jobs
        self._order_locks: dict[str, _OrderLock] = {}  # orders being packed now
        # After the floor is rebuilt (the floor listens first), tell new scale readers their last weight.
        cache.on_stations_changed(lambda _stations: self.remember_used_weights())
        self.scale_wait_s = scale_wait_s
        # The carriers whose numbers labels are awaiting (read at start, kept as labels wait and
        # go), so a lease change with nothing awaiting costs no query.
        self._awaiting = {job.decision.awaits_number for job in self.jobs.awaiting_number()}
        self._releasing: asyncio.Task[None] | None = None
        self._release_again = False
        cache.on_number_leases_changed(self.release_awaiting_soon)

    # -- pack ----------------------------------------------------------------------------------

    async def pack(
        self,
        order_ref: str,
        station_code: str,
        request_id: str,
        *,
        parcel: int = 1,
        dimensions_mm: tuple[int, int, int] | None = None,
    ) -> PackAnswer:
        """Print parcel `parcel`'s label at the station; the answer of `POST /api/v1/pack`.

        `dimensions_mm` are the parcel's (else the ones the OMS expects for it, if any). Scans
        of one order run one after the other: a second scan (a double click, a retry) waits for
        the first and answers with its job, instead of waiting for a parcel weight the first one
        already took.
        """
        if isinstance(parcel, bool) or not isinstance(parcel, int) or not 1 <= parcel <= MAX_PARCELS:
            raise InputError(
                f"parcel must be a parcel number from 1 to {MAX_PARCELS}, got {parcel!r}",
                code="invalid_input",
            )
        async with self._order_lock(order_ref):
            return await self._pack(order_ref, station_code, request_id, parcel, dimensions_mm)

    @contextlib.asynccontextmanager
    async def _order_lock(self, order_ref: str) -> AsyncIterator[None]:
        """Hold the order's lock: what one order's scans, closes and voids do runs one at a time.

        The lock is dropped when nothing of the order is running or waiting.
        """
        lock = self._order_locks.get(order_ref)
        if lock is None:
            lock = self._order_locks[order_ref] = _OrderLock()
        lock.users += 1
        try:
            async with lock.lock:
                yield
        finally:
            lock.users -= 1
            if not lock.users:
                del self._order_locks[order_ref]

    async def _pack(
        self,
        order_ref: str,
        station_code: str,
        request_id: str,
        parcel: int,
        dimensions_mm: tuple[int, int, int] | None,
    ) -> PackAnswer:
        jobs_written = self.jobs.written
        repeated = self._repeat_of(order_ref, request_id, parcel)
        if repeated is not None:
            return repeated
        order = self._cache.order(order_ref)
        if order is None:
            raise NotFound(
                f"order {order_ref} is not known at this agent: check the scanned barcode, or wait a "
                "moment for the agent to sync from the cloud and scan again",
                code="order_not_found",
            )
        self._apply_cloud_voids(order_ref, order, parcel)
        packed = self._already_packed(order_ref, parcel)
        if packed is not None:
            return packed
        if order.state == "cancelled":
            raise Conflict(
                f"order {order_ref} was cancelled: do not ship it; set the parcel aside for your supervisor",
                code="order_cancelled",
            )
        station = self._floor.get(station_code)
        if station is None:
            raise NotFound(
                f"station {station_code} is not configured for this warehouse: check the station code "
                "on the station page, or add the station in the cloud console",
                code="station_not_found",
            )

        expected = order.order.parcels[parcel - 1] if parcel <= len(order.order.parcels) else None
        dims = dimensions_mm or (expected.dimensions_mm if expected is not None else None)
        parcel_count = max(len(order.order.parcels), parcel)

        weight = await station.weigh(self.scale_wait_s, order_ref)
        # Whether a recorded job used the weight; if not (an error, a repeat found while waiting,
        # nothing sent), it goes back to the scale for the next scan of this parcel.
        spent = False
        try:
            decision = decide(
                order.order_json,
                weight.grams,
                self._cache.ruleset(),
                dims,
                parcel_number=parcel,
                parcel_count=parcel_count,
                ship_from_country=str(self._cache.ship_from(self._labeller.warehouse).get("country", "")),
            )
            plan = shipping_label_plan(order, parcel, decision)
            template = None if plan.carrier_label else self._cache.templates.get(decision.template)
            lane, routed = self._queue.route(station, decision.printer_role)
            if plan.carrier_label is None:
                leased, given = self._tracking_source(order_ref, decision.carrier, parcel, expected)
            else:  # the carrier's own label, as the OMS sent it: its number is the one printed
                leased, given = False, plan.tracking_number or None
            carrier_label_data = None
            if plan.carrier_label is not None:
                # The OMS's own label, drawn for this printer in a worker thread (a PDF costs ms).
                carrier_label_data = await self._labeller.carrier_label_bytes(
                    lane, plan.carrier_label, parcel=parcel
                )

            def label(tracking: str | None, sscc: str = "", awaits: str = "") -> Job:
                return self._labeller.label_job(
                    order_ref,
                    order,
                    weight.grams,
                    decision,
                    template,
                    station_code,
                    lane,
                    request_id=request_id,
                    message=routed,
                    parcel=parcel,
                    parcel_count=parcel_count,
                    tracking=tracking,
                    dimensions_mm=dims,
                    sscc=sscc,
                    carrier_label=plan.carrier_label,
                    carrier_label_data=carrier_label_data,
                    awaits_number=awaits,
                    documents=decision.documents if awaits else (),
                )

            # A leased number is asked for, and its label rendered, under the lane's lock with no
            # `await` until the queue takes it in the job's transaction: no other pack can take it.
            job = None if leased else label(given)

            async with lane.lock:
                if self.jobs.written != jobs_written:
                    # Waiting for the scale or the lane let other packs record jobs: ask again.
                    repeated = self._repeat_of(order_ref, request_id, parcel) or self._already_packed(
                        order_ref, parcel
                    )
                    if repeated is not None:
                        return repeated
                number = None
                if leased:
                    number = self._queue.numbers.next_number(decision.carrier)
                    if number is None:  # none left: the parcel is packed, its label waits for one
                        job = label("", awaits=decision.carrier)
                    else:
                        sscc = number.tracking_number if number.kind == TrackingKind.SSCC else ""
                        job = label(number.tracking_number, sscc)
                assert job is not None
                # From here the job is recorded unless the queue says nothing was sent: a `failed`
                # job keeps the weight (a reprint reuses it), a forgotten one does not.
                spent = True
                if job.decision.awaits_number:
                    done = self._hold_for_number(job, PACKED_EVENTS)
                else:
                    try:
                        done = await self._queue.print_job(lane, job, PACKED_EVENTS, number=number)
                    except PrinterError as exc:
                        spent = not exc.nothing_sent
                        log_outcome(log, job, "failed", exc.message)
                        raise
            asyncio.get_running_loop().call_soon(self._after_answer, done, "pack")
        finally:
            if not spent:
                station.give_back(order_ref)
        documents = plan_documents(order, parcel, decision)
        # The documents of a label awaiting a number wait with it (`release_awaiting` prints them).
        if documents and not done.decision.awaits_number:
            await self._print_documents(done, order, decision, documents, station, parcel_count, request_id)
        return done.answer()

    async def _print_documents(
        self,
        label: Job,
        order: SyncedOrder,
        decision: Decision,
        documents: list[DocumentPlan],
        station: Station,
        parcel_count: int,
        request_id: str,
    ) -> None:
        """The parcel's documents after its shipping label (`label`), each a job of its own on a
        printer of its role, at most once (its request id is the pack's + ':' + its kind, and a
        parcel's document prints once). A printer in a fault holds only its document; one that
        fails is logged and recorded by the queue, and the pack's answer stays its label's. A
        carton label whose own SSCC account has no number left waits for one, as a parcel's label
        does (`release_awaiting`)."""
        for plan in documents:
            document_request = f"{request_id}:{plan.kind.value}"
            if self.jobs.by_request(document_request) or self.jobs.first_for_parcel(
                label.order_ref, label.parcel, plan.kind.value
            ):
                continue
            try:
                template = self._cache.templates.get(plan.template) if plan.template else None
                lane, routed = self._queue.route(station, plan.printer_role)
                async with lane.lock:
                    if self.jobs.by_request(document_request):
                        continue
                    # No `await` from here until the queue takes the carton's own SSCC with its job.
                    awaits = ""
                    try:
                        number, sscc = document_number(
                            self._queue.numbers, self._cache, decision, plan.kind, label
                        )
                    except NumbersExhausted as exc:  # the carton label waits for its SSCC
                        number, sscc, awaits = None, "", exc.carrier
                    job = self._labeller.label_job(
                        label.order_ref,
                        order,
                        label.weight_g or 0,
                        decision,
                        template,
                        station.code,
                        lane,
                        request_id=document_request,
                        message=routed,
                        parcel=label.parcel,
                        parcel_count=parcel_count,
                        tracking=label.tracking_number,
                        dimensions_mm=label.decision.dimensions_mm,
                        sscc=sscc,
                        document=plan.kind,
                        printer_role=plan.printer_role,
                        awaits_number=awaits,
                    )
                    if awaits:
                        done = self._hold_for_number(job, (EventKind.LABEL_PRINTED,))
                    else:
                        done = await self._queue.print_job(
                            lane, job, (EventKind.LABEL_PRINTED,), number=number
                        )
            except DocksideError as exc:
                log.warning(
                    "%s of parcel %d of order %s did not print: %s",
                    plan.kind.value,
                    label.parcel,
                    label.order_ref,
                    exc.message,
                    extra={"order_ref": label.order_ref, "station": station.code},
                )
                continue
            asyncio.get_running_loop().call_soon(self._after_answer, done, "document")

    def _hold_for_number(self, job: Job, events: tuple[EventKind, ...]) -> Job:
        """Record `job` (rendered with `awaits_number`: no bytes) held until a number of its carrier
        comes, with a message for the packer; a person hears once that the carrier ran out."""
        carrier = job.decision.awaits_number
        self._queue.numbers.note_exhausted(carrier, order_ref=job.order_ref, station=job.station)
        what = "SSCC" if job.document == DocumentKind.CARTON_LABEL else "tracking number"
        document = "label" if job.document == DocumentKind.SHIPPING_LABEL else job.document.replace("_", " ")
        message = (
            f"no {carrier} {what} left at this agent: this {document} prints by itself as soon as the "
            "cloud sends more numbers (check the agent's connection); put the parcel aside with its order"
        )
        held = self._queue.hold_for_number(dataclasses.replace(job, message=message), events)
        self._awaiting.add(carrier)
        return held

    def _after_answer(self, done: Job, kind: str) -> None:
        """What follows a recorded job but need not delay the packer's answer: wake the outbox
        sender, count the label, log the outcome. Scheduled with `call_soon` as the answer is
        made, so it runs on the loop right after the answer is written to the station."""
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind=kind).inc()
        log_outcome(log, done, str(done.status), done.message)

    def _repeat_of(self, order_ref: str, request_id: str, parcel: int) -> PackAnswer | None:
        first = self.jobs.by_request(request_id)
        if first is None:
            return None
        if first.order_ref != order_ref or first.parcel != parcel:
            raise Conflict(
                f"request id {request_id} was already used for parcel {first.parcel} of order "
                f"{first.order_ref}: send a new request id for every scan",
                code="request_id_reused",
            )
        return first.answer()

    def _already_packed(self, order_ref: str, parcel: int) -> PackAnswer | None:
        first = self.jobs.first_for_parcel(order_ref, parcel)
        return first.answer("already_packed") if first is not None else None

    def _tracking_source(
        self, order_ref: str, carrier: str, parcel: int, expected: Any
    ) -> tuple[bool, str | None]:
        return tracking_source(self._cache, order_ref, carrier, parcel, expected)

    # -- close -----------------------------------------------------------------------------------

    async def close(self, order_ref: str, reason: str = "") -> dict[str, Any]:
        """End an order with the parcels labelled so far (`POST /api/v1/orders/{ref}/close`).

        Records `order_closed` with how many parcels were labelled; refuses an order this agent
        does not know or one with no labelled parcel (pack parcel 1 first).
        """
        reason = _reason(reason)
        async with self._order_lock(order_ref):
            order = self._cache.order(order_ref)
            if order is None:
                raise NotFound(
                    f"order {order_ref} is not known at this agent: check the reference, or wait a "
                    "moment for the agent to sync from the cloud",
                    code="order_not_found",
                )
            parcels = self.jobs.parcels_labelled(order_ref)
            if not parcels:
                raise Conflict(
                    f"order {order_ref} has no labelled parcel to close with: pack its parcels "
                    "first, or cancel the order in the cloud if it does not ship",
                    code="nothing_labelled",
                )
            self._outbox.record(
                EventKind.ORDER_CLOSED, {"parcels": len(parcels), "reason": reason}, order_ref=order_ref
            )
        self._outbox.notify()
        log.info("order %s closed with %d parcel(s)", order_ref, len(parcels), extra={"order_ref": order_ref})
        return {
            "order_ref": order_ref,
            "status": "closed",
            "parcels": len(parcels),
            "expected": _expected(order),
        }

    # -- void and relabel ------------------------------------------------------------------------

    async def void_parcel(self, order_ref: str, parcel: int, reason: str) -> dict[str, Any]:
        """Void parcel `parcel`'s shipping label (`POST /api/v1/orders/{ref}/parcels/{n}/void`).

        In one transaction: the label's job and its reprints get status `voided` (kept for
        history), the leased numbers they took are voided (`number_voided`, never used again) and
        `parcel_voided` `{parcel, tracking_number, reason}` is recorded. The next pack of the
        parcel prints a new label with a new number. Refused: no reason, an unknown order, a
        parcel with no label (or one already voided), a label still printing, a parcel handed over.
        """
        reason = _reason(
            reason,
            required="voiding a label needs a reason (for example 'address changed'): type why it is voided",
        )
        if isinstance(parcel, bool) or not 1 <= parcel <= MAX_PARCELS:
            raise InputError(f"parcels are numbered 1 to {MAX_PARCELS}, not {parcel}", code="invalid_input")
        async with self._order_lock(order_ref):
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
                )
            raise Conflict(
                f"parcel {parcel} of order {order_ref} has no label to void: nothing was printed for it",
                code="parcel_not_labelled",
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
            )
        handed = store.conn.execute(
            "SELECT 1 FROM handovers WHERE order_ref = ? AND parcel = ? LIMIT 1", (order_ref, parcel)
        ).fetchone()
        if handed is not None:
            raise Conflict(
                f"parcel {parcel} of order {order_ref} was handed over to the carrier: it cannot be "
                "voided here; void it with the carrier, then in the cloud",
                code="parcel_handed_over",
            )
        # The number on the parcel: the newest printed label's (a relabel-reprint took a new one).
        printed = [number for _, status, number in rows if status == JobStatus.PRINTED and number]
        tracking = printed[-1] if printed else label.tracking_number
        with store.atomic():
            for job_id, _, _ in rows:
                self.jobs.set_status(job_id, JobStatus.VOIDED, message=f"voided: {reason}")
                self._queue.numbers.void(
                    job_id, reason, order_ref=order_ref, station=label.station, parcel=parcel
                )
            if tell_cloud:  # not for a void the cloud asked for: it knows
                body = {"parcel": parcel, "tracking_number": tracking, "reason": reason}
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

    def _apply_cloud_voids(self, order_ref: str, order: SyncedOrder, parcel: int) -> None:
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
        printed = [number for status, number in rows if status == JobStatus.PRINTED and number]
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
        printed = [row for row in rows if row[2] == JobStatus.PRINTED]
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

    # -- reprint -------------------------------------------------------------------------------

    async def reprint(self, job_id: str, reason: str, request_id: str | None = None) -> PackAnswer:
        """Print a job's label again on purpose; records a new job pointing at the old one.

        A reprint is the same label with the same tracking number, except when the job's leased
        number was voided (it ended `unknown` or `failed`): that number never prints again, so
        the reprint renders the parcel's label anew with the next number.
        """
        reason = _reason(
            reason,
            required=(
                "a reprint needs a reason (for example 'label torn'): type why the label is printed again"
            ),
        )
        original = self.jobs.get(job_id)
        if original is None:
            raise NotFound(
                f"job {job_id} does not exist at this agent: check the job id on the station page",
                code="job_not_found",
            )
        if request_id is not None:
            first = self.jobs.by_request(request_id)
            if first is not None:
                if first.reprint_of != job_id:
                    raise Conflict(
                        f"request id {request_id} was already used for another job: "
                        "send a new request id for every reprint",
                        code="request_id_reused",
                    )
                return first.answer()
        if original.status != JobStatus.VOIDED and original.document == DocumentKind.SHIPPING_LABEL:
            synced = self._cache.order(original.order_ref)
            if synced is not None:
                self._apply_cloud_voids(original.order_ref, synced, original.parcel)
                original = self.jobs.get(job_id) or original
        if original.status == JobStatus.VOIDED:
            raise Conflict(
                f"job {job_id}'s label was voided and is never printed again: pack parcel "
                f"{original.parcel} of order {original.order_ref} again for its new label",
                code="job_voided",
            )
        if original.status in (JobStatus.SENDING, JobStatus.HELD):
            what = (
                "is being printed right now"
                if original.status == JobStatus.SENDING
                else ("is waiting for its printer and prints by itself")
            )
            raise Conflict(
                f"job {job_id} {what}: wait for it to finish, then reprint if needed",
                code="job_in_flight",
            )
        lane = self._floor.lane(original.printer)
        if lane is None:
            raise PrinterUnusable(
                f"printer {original.printer}, which printed job {job_id}, is no longer configured: "
                "pack the order again at a station with a printer, or add the printer back",
                code="printer_not_configured",
            )
        now = now_ms()
        job = dataclasses.replace(
            original,
            job_id=new_job_id(),
            request_id=request_id,
            status=JobStatus.SENDING,
            created_at_ms=now,
            updated_at_ms=now,
            reprint_of=job_id,
            reason=reason,
            message="",
        )
        voided = self._queue.numbers.voided_of(job_id)
        current = None if voided else await self._current_oms_label(original, lane)
        async with lane.lock:
            number = None
            if current is not None:
                # The OMS relabelled the parcel after this job printed (a new label or number
                # after a weight check): the reprint is the parcel's label as the order has it now.
                job = self._oms_relabel(original, lane, job, *current)
            elif voided:
                # The job's leased number was voided (the job ended unknown or failed) and is never
                # printed again: the reprint is a new label of the same parcel with the next number.
                job, number = self._relabel(original, voided[0].carrier, lane, job)
            done = await self._queue.print_job(lane, job, REPRINTED_EVENTS, number=number)
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind="reprint").inc()
        return done.answer()

    async def _current_oms_label(
        self, original: Job, lane: PrinterLane
    ) -> tuple[SyncedOrder, LabelDocument | None, bytes | None, str] | None:
        """The parcel's label as the order has it now, when it is not what `original` printed:
        another OMS label (its bytes for `lane` are made here) or tracking number, or, for a
        template label of an OMS/API-numbered carrier, another OMS tracking number. Else None."""
        if original.document != DocumentKind.SHIPPING_LABEL:
            return None
        order = self._cache.order(original.order_ref)
        expected = expected_parcel(order, original.parcel) if order is not None else None
        if order is None or expected is None:
            return None
        renumbered = bool(expected.tracking_number) and expected.tracking_number != original.tracking_number
        if expected.label is None:
            account = self._cache.carriers.get(original.decision.carrier) or {}
            tracking = account.get("tracking")
            kind = tracking.get("kind") if isinstance(tracking, dict) else None
            from_oms = kind in (TrackingKind.OMS, TrackingKind.API)
            if renumbered and from_oms and not original.decision.template.startswith("carrier-label-"):
                return order, None, None, expected.tracking_number
            return None
        data = await self._labeller.carrier_label_bytes(lane, expected.label, parcel=original.parcel)
        if data == original.label and not renumbered:
            return None
        return order, expected.label, data, expected.tracking_number

    def _oms_relabel(
        self,
        original: Job,
        lane: PrinterLane,
        reprint: Job,
        order: SyncedOrder,
        label: LabelDocument | None,
        data: bytes | None,
        tracking: str,
    ) -> Job:
        kept = original.decision
        template = None if label is not None else self._cache.templates.get(kept.template)
        job = self._labeller.label_job(
            original.order_ref,
            order,
            original.weight_g or 0,
            Decision(
                carrier=kept.carrier,
                service=kept.service,
                template=kept.template,
                printer_role=kept.printer_role or "label",
            ),
            template,
            original.station,
            lane,
            request_id=reprint.request_id,
            parcel=original.parcel,
            parcel_count=max(len(order.order.parcels), original.parcel),
            tracking=tracking or None,
            dimensions_mm=kept.dimensions_mm,
            carrier_label=label,
            carrier_label_data=data,
        )
        return dataclasses.replace(
            job,
            reprint_of=reprint.reprint_of,
            reason=reprint.reason,
            decision=dataclasses.replace(
                job.decision, weight_source=kept.weight_source, wave_id=kept.wave_id
            ),
        )

    def _relabel(
        self, original: Job, carrier: str, lane: PrinterLane, reprint: Job
    ) -> tuple[Job, TakenNumber]:
        """`reprint` rendered again for the parcel of `original` with the next leased number of
        `carrier` (asked under the lane's lock: the queue takes it with the job)."""
        order = self._cache.order(original.order_ref)
        if order is None:
            raise NotFound(
                f"order {original.order_ref} is no longer at this agent, so job {original.job_id}, whose "
                "tracking number was voided, cannot be labelled again: ask your supervisor",
                code="order_not_found",
            )
        number = self._queue.numbers.next_number(carrier)
        if number is None:
            raise self._queue.numbers.report_exhausted(
                carrier, order_ref=original.order_ref, station=original.station
            )
        job = self._render_with_number(original, order, number, lane)
        return dataclasses.replace(
            job, request_id=reprint.request_id, reprint_of=reprint.reprint_of, reason=reprint.reason
        ), number

    def _render_with_number(
        self,
        original: Job,
        order: SyncedOrder,
        number: TakenNumber,
        lane: PrinterLane,
        *,
        same_job: bool = False,
    ) -> Job:
        """A new `sending` job (not recorded) of `original`'s document of its parcel, rendered for
        `lane` with leased `number` from the template `original` named (its current version): a
        shipping label prints it as its tracking number, a carton label as its own SSCC (the
        parcel's tracking number unchanged). Keeps `original`'s weight, rules' decision, weight
        source and wave; a relabel (reprint) renders a new job here, a label that awaited a number
        its own (`same_job`: its id, which the label prints, and its weight, time and reprint)."""
        kept = original.decision
        carton = original.document == DocumentKind.CARTON_LABEL
        job = self._labeller.label_job(
            original.order_ref,
            order,
            original.weight_g or 0,
            Decision(
                carrier=kept.carrier,
                service=kept.service,
                template=kept.template,
                printer_role=kept.printer_role or "label",
            ),
            self._cache.templates.get(kept.template),
            original.station,
            lane,
            request_id=original.request_id,
            parcel=original.parcel,
            parcel_count=max(len(order.order.parcels), original.parcel),
            # A carton label's own SSCC was voided: the carton is labelled anew, the parcel's
            # tracking number unchanged.
            tracking=original.tracking_number if carton else number.tracking_number,
            dimensions_mm=kept.dimensions_mm,
            sscc=number.tracking_number if carton or number.kind == TrackingKind.SSCC else "",
            document=DocumentKind(original.document),
            printer_role=kept.printer_role,
            job_id=original.job_id if same_job else None,
        )
        same = dataclasses.replace(job.decision, weight_source=kept.weight_source, wave_id=kept.wave_id)
        job = dataclasses.replace(job, decision=same)
        if same_job:
            keep = ("weight_g", "created_at_ms", "reprint_of", "reason")
            job = dataclasses.replace(job, **{field: getattr(original, field) for field in keep})
        return job

    # -- labels awaiting a number ---------------------------------------------------------------

    def release_awaiting_soon(self) -> None:
        """At start and whenever the number leases change: release the labels awaiting a number,
        in a task of their own (one at a time; a change during a run asks for one more run)."""
        if not self._awaiting:
            return
        if self._releasing is not None and not self._releasing.done():
            self._release_again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the cache loaded outside the loop (a command, a test): at start then
            return
        self._releasing = loop.create_task(self._release_runs(), name="labels awaiting a number")

    async def _release_runs(self) -> None:
        self._release_again = True
        while self._release_again:
            self._release_again = False
            try:
                await self.release_awaiting()
            except Exception:  # the next lease change (or start) tries again
                log.exception("labels awaiting a tracking number could not be released")

    async def stop(self) -> None:
        """Let a release run finish the label it is sending (a few seconds at most), then stop it."""
        task, self._releasing = self._releasing, None
        if task is None or task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def release_awaiting(self) -> int:
        """Print the labels awaiting a leased number that can now have one, oldest first; how many.

        Each is released under its order's lock and its printer lane's lock: the next number of
        its carrier is asked for, the label rendered with it (`_render_with_number`, as a
        relabel is) and handed to the print queue (`PrintQueue.print_awaited`), which takes the
        number in the transaction that fills in the job and then sends it, or holds it for a
        faulted printer. A carrier with no number left stops its labels (the rest wait on);
        another carrier's go on. A parcel's documents (packing slip, carton label, ...) follow its
        label: the ruleset's documents decided at the scan, kept in the waiting job's decision
        (not decided again, so a ruleset published meanwhile cannot change what a packed parcel
        gets). As after a scan, a crash between the label and its documents leaves the
        documents unprinted; the label is never printed twice, nor its number used twice.
        """
        waiting = self.jobs.awaiting_number()
        self._awaiting = {job.decision.awaits_number for job in waiting}
        run_out: set[str] = set()
        released = 0
        for job in waiting:
            carrier = job.decision.awaits_number
            if carrier in run_out:
                continue
            outcome = await self._release(job)
            if outcome is None:
                run_out.add(carrier)
            elif outcome:
                released += 1
        self._awaiting = {job.decision.awaits_number for job in self.jobs.awaiting_number()}
        if released:
            log.info("%d label(s) that awaited a tracking number released", released)
        return released

    async def _release(self, waiting: Job) -> bool | None:
        """Release one label awaiting a number: True when it was handed to the queue, None when its
        carrier has no number left, False when it cannot go now (its order or printer is gone,
        its template unusable: it waits on, logged) or went already."""
        numbers = self._queue.numbers
        carrier = waiting.decision.awaits_number
        if numbers.next_number(carrier) is None:
            return None
        ids = {"order_ref": waiting.order_ref, "job_id": waiting.job_id, "station": waiting.station}
        async with self._order_lock(waiting.order_ref):
            order = self._cache.order(waiting.order_ref)
            lane = self._floor.lane(waiting.printer)
            if order is None or order.state == "cancelled" or lane is None:
                why = "its printer is no longer configured" if order and lane is None else "its order is gone"
                if order is not None and order.state == "cancelled":
                    why = "its order was cancelled"
                log.warning("job %s awaits a number but cannot print: %s", waiting.job_id, why, extra=ids)
                return False
            async with lane.lock:
                job = self.jobs.get(waiting.job_id)
                if job is None or job.status != JobStatus.HELD or not job.decision.awaits_number:
                    return False  # released by an earlier run
                number = numbers.next_number(carrier)
                if number is None:
                    return None
                try:  # no `await` from the number until the queue takes it
                    rendered = self._render_with_number(job, order, number, lane, same_job=True)
                except DocksideError as exc:
                    log.warning("job %s cannot be rendered yet: %s", job.job_id, exc.message, extra=ids)
                    return False
                try:
                    done = await self._queue.print_awaited(lane, rendered, number)
                except PrinterError as exc:
                    log_outcome(log, rendered, "failed", exc.message)
                    return True
            log_outcome(log, done, str(done.status), done.message)
            station = self._floor.get(job.station)
            kept = job.decision
            if job.document == DocumentKind.SHIPPING_LABEL and kept.documents and station is not None:
                decision = Decision(
                    carrier=kept.carrier,
                    service=kept.service,
                    template=kept.template,
                    printer_role=kept.printer_role or "label",
                    documents=kept.documents,
                )
                await self._print_documents(
                    done,
                    order,
                    decision,
                    plan_documents(order, job.parcel, decision),
                    station,
                    max(len(order.order.parcels), job.parcel),
                    job.request_id or job.job_id,
                )
        return True

    # -- weights across restarts ---------------------------------------------------------------

    def remember_used_weights(self) -> None:
        """At start and after the floor changes: tell each new scale reader which weight its
        stations' last scan took, so a parcel left on the scale across a restart of the agent
        (or of the reader) is not weighed again for the next order."""
        stations_of: dict[int, tuple[ScaleReader, list[str]]] = {}
        for code, scale in self._floor.scales():
            if not scale.remembered:
                stations_of.setdefault(id(scale), (scale, []))[1].append(code)
        for scale, codes in stations_of.values():
            last = self.jobs.last_weighed(codes)
            scale.remember_used(UsedWeight(*last) if last is not None else None)


def document_number(
    numbers: Numbers, cache: Cache, decision: Decision, kind: DocumentKind, label: Job
) -> tuple[TakenNumber | None, str]:
    """The SSCC a parcel document prints, and the leased number to take with its job (or None).

    A carton label whose ruleset entry names an sscc `carrier` gets its own SSCC, that account's
    next leased number (ask under the document's lane lock, then no `await` until `print_job`
    takes it). Any other document shows the parcel's SSCC (its shipping label's, when it has one);
    a carton label without either prints with no SSCC, and a warning says so.
    """
    if kind != DocumentKind.CARTON_LABEL:
        return None, label.decision.sscc
    carrier = next((document.carrier for document in decision.documents if document.kind == kind), "")
    if not carrier:
        if not label.decision.sscc:
            log.warning(
                "the carton label of parcel %d of order %s prints without an SSCC: its shipping label "
                "has none; name an sscc carrier account in the ruleset's carton_label document",
                label.parcel,
                label.order_ref,
                extra={"order_ref": label.order_ref, "station": label.station},
            )
        return None, label.decision.sscc
    account = cache.carriers.get(carrier)
    tracking = account.get("tracking") if account is not None else None
    if not isinstance(tracking, dict) or tracking.get("kind") != TrackingKind.SSCC:
        raise Conflict(
            f"the ruleset's carton label takes its SSCC from carrier account {carrier}, which is not an "
            "sscc carrier account at this agent: fix the ruleset, or wait for the agent to sync",
            code="carrier_unusable",
        )
    number = numbers.next_number(carrier)
    if number is None:
        raise numbers.report_exhausted(carrier, order_ref=label.order_ref, station=label.station)
    return number, number.tracking_number


def tracking_source(
    cache: Cache, order_ref: str, carrier: str, parcel: int, expected: Any
) -> tuple[bool, str | None]:
    """Where the parcel's tracking number comes from, by the carrier's account in the cache:
    (True, None) a leased number; (False, number) the OMS's; (False, None) no account, the
    job-id reference. Conflict when the OMS's number has not come or the account is unusable."""
    account = cache.carriers.get(carrier)
    if account is None:
        return False, None
    tracking = account.get("tracking")
    kind = tracking.get("kind") if isinstance(tracking, dict) else None
    if kind in (TrackingKind.RANGE, TrackingKind.SSCC):
        return True, None
    if kind in (TrackingKind.OMS, TrackingKind.API):
        number = expected.tracking_number if expected is not None else ""
        if not number:
            raise Conflict(
                f"the OMS has not sent parcel {parcel}'s {carrier} label and tracking number for "
                f"order {order_ref} yet: set the parcel aside and scan it again once it has, or ask "
                "your supervisor",
                code="tracking_number_missing",
            )
        return False, str(number)
    raise Conflict(
        f"carrier {carrier}'s tracking kind {str(kind)[:20]!r} is unknown to this agent: update the "
        "agent, or pack with another carrier",
        code="carrier_unusable",
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


def _expected(order: SyncedOrder) -> int:
    """How many parcels the OMS expects for the order (one when it did not say)."""
    return max(1, len(order.order.parcels))


def _reason(reason: str, *, required: str = "") -> str:
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
