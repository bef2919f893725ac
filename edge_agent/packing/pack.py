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

The tracking number comes from the decided carrier's account (`carriers` in the cache): a
leased number (`range`, `sscc`) is taken in the job's transaction (`edge_agent.store.numbers`),
none left refuses the pack and gives the weight back; the OMS's (`oms`, `api`) is the order's
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
import dataclasses
import logging
from typing import Any

from dockside.errors import Conflict, DocksideError, InputError, NotFound, PrinterError, PrinterUnusable
from dockside.orders import SyncedOrder
from dockside.rules import Decision, decide
from dockside.shipping.parcels import MAX_PARCELS, TrackingKind
from dockside.sync import EventKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.scale_reader import ScaleReader, UsedWeight
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.documents import DocumentPlan, plan_documents, shipping_label_plan
from edge_agent.packing.labelling import Labeller
from edge_agent.printing.jobs import Job, JobStatus, PackAnswer, log_outcome, new_job_id
from edge_agent.printing.queue import REPRINTED_EVENTS, PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import now_ms
from edge_agent.store.numbers import TakenNumber
from edge_agent.store.outbox import Outbox

__all__ = ["PACKED_EVENTS", "Packer"]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
# What a scan that prints records, in the transaction that marks its job printed.
PACKED_EVENTS = (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)


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
        lock = self._order_locks.get(order_ref)
        if lock is None:
            lock = self._order_locks[order_ref] = _OrderLock()
        lock.users += 1
        try:
            async with lock.lock:
                return await self._pack(order_ref, station_code, request_id, parcel, dimensions_mm)
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

            def label(tracking: str | None, sscc: str = "") -> Job:
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
                    if number is None:
                        raise self._queue.numbers.report_exhausted(
                            decision.carrier, order_ref=order_ref, station=station_code
                        )
                    sscc = number.tracking_number if number.kind == TrackingKind.SSCC else ""
                    job = label(number.tracking_number, sscc)
                assert job is not None
                # From here the job is recorded unless the queue says nothing was sent: a `failed`
                # job keeps the weight (a reprint reuses it), a forgotten one does not.
                spent = True
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
        if documents:
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
        fails is logged and recorded by the queue, and the pack's answer stays its label's."""
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
                        sscc=label.decision.sscc,
                        document=plan.kind,
                        printer_role=plan.printer_role,
                    )
                    done = await self._queue.print_job(lane, job, (EventKind.LABEL_PRINTED,))
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
        """Where the parcel's tracking number comes from, by the carrier's account in the cache:
        (True, None) a leased number; (False, number) the OMS's; (False, None) no account, the
        job-id reference."""
        account = self._cache.carriers.get(carrier)
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

    # -- close -----------------------------------------------------------------------------------

    async def close(self, order_ref: str, reason: str = "") -> dict[str, Any]:
        """End an order with the parcels labelled so far (`POST /api/v1/orders/{ref}/close`).

        Records `order_closed` with how many parcels were labelled; refuses an order this agent
        does not know or one with no labelled parcel (pack parcel 1 first).
        """
        reason = reason.strip()
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(
                f"the reason is {len(reason)} characters long: keep it under {MAX_REASON_CHARS}",
                code="reason_too_long",
            )
        lock = self._order_locks.get(order_ref)
        if lock is None:
            lock = self._order_locks[order_ref] = _OrderLock()
        lock.users += 1
        try:
            async with lock.lock:
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
        finally:
            lock.users -= 1
            if not lock.users:
                del self._order_locks[order_ref]
        self._outbox.notify()
        log.info("order %s closed with %d parcel(s)", order_ref, len(parcels), extra={"order_ref": order_ref})
        return {
            "order_ref": order_ref,
            "status": "closed",
            "parcels": len(parcels),
            "expected": _expected(order),
        }

    # -- reprint -------------------------------------------------------------------------------

    async def reprint(self, job_id: str, reason: str, request_id: str | None = None) -> PackAnswer:
        """Print a job's label again on purpose; records a new job pointing at the old one.

        A reprint is the same label with the same tracking number, except when the job's leased
        number was voided (it ended `unknown` or `failed`): that number never prints again, so
        the reprint renders the parcel's label anew with the next number.
        """
        reason = reason.strip()
        if not reason:
            raise InputError(
                "a reprint needs a reason (for example 'label torn'): type why the label is printed again",
                code="reason_required",
            )
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(
                f"the reason is {len(reason)} characters long: keep it under {MAX_REASON_CHARS}",
                code="reason_too_long",
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
        async with lane.lock:
            number = None
            if voided:
                # The job's leased number was voided (the job ended unknown or failed) and is never
                # printed again: the reprint is a new label of the same parcel with the next number.
                job, number = self._relabel(original, voided[0].carrier, lane, job)
            done = await self._queue.print_job(lane, job, REPRINTED_EVENTS, number=number)
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind="reprint").inc()
        return done.answer()

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
        kept = original.decision
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
            request_id=reprint.request_id,
            parcel=original.parcel,
            parcel_count=max(len(order.order.parcels), original.parcel),
            tracking=number.tracking_number,
            dimensions_mm=kept.dimensions_mm,
            sscc=number.tracking_number if number.kind == TrackingKind.SSCC else "",
        )
        relabelled = dataclasses.replace(
            job,
            reprint_of=reprint.reprint_of,
            reason=reprint.reason,
            decision=dataclasses.replace(
                job.decision, weight_source=kept.weight_source, wave_id=kept.wave_id
            ),
        )
        return relabelled, number

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


def _expected(order: SyncedOrder) -> int:
    """How many parcels the OMS expects for the order (one when it did not say)."""
    return max(1, len(order.order.parcels))
