"""The pack of one parcel: scan -> order -> stable weight -> rules -> label -> the print queue -> answer.

The Packer keeps the pack decision and prints the parcel's documents after its label; what is
done to a parcel afterwards lives next to it, each in a module of its own, and the Packer
builds them around the same collaborators and one shared order lock (`OrderLocks`):
`parcel_actions` (close, void, hand over: `Packer.parcels`), `reprint` (reprint and relabel:
`Packer.reprints`) and `awaiting` (labels awaiting a leased number: `Packer.awaiting`).

Everything here is local (no call to the cloud, ever) and runs on the agent's event loop with
its single SQLite connection: the database work is a few statements of tens of microseconds
each, cheaper inline than a hop to a worker thread, and running on the loop means the watch
loop and the outbox sender, which use the same connection, can never interleave with a pack's
transaction. Only the slow, blocking device work leaves the loop: the bytes go out through the
printer's own lane thread, and a scale that has no fresh stable weight is waited for in a
thread.

The packer decides whether and what to print; the print queue (`edge_agent.printing.queue`)
prints it: hold or send, at most once, events in the job's transaction, fallback routing. An
order ships as one or more parcels, and a pack names its parcel (default 1): the same request id
returns the first job; a parcel that already has its shipping label answers `already_packed`
with it (parcel 2 of an order packs whatever became of parcel 1); a cancelled order prints
nothing, nor does an order the packer closed (`order_closed`) for a parcel with no label yet. A
parcel whose label was voided (here or in the cloud) packs again with a new label.

The tracking number comes from the decided carrier's account (`carriers` in the cache): a
leased number (`range`, `sscc`) is taken in the job's transaction (`edge_agent.store.numbers`).
With none left the parcel is still packed (its weight spent) and its label waits for a number
(`edge_agent.packing.awaiting`), its documents with it. The OMS's (`oms`, `api`) is the order's
`parcels[n - 1].tracking_number`, refused while it has not come; without an account the label
carries the job-id reference, as before.

A weight serves one parcel: the pack claims the scale's stable weight for its parcel of its
order (a repeat of that parcel may take it again, parcel 2 of the same order may not), and the
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
import logging
from typing import Any

from dockside.errors import Conflict, DocksideError, InputError, NotFound, PrinterError
from dockside.orders import SyncedOrder
from dockside.rules import Decision, decide
from dockside.shipping.parcels import MAX_PARCELS, DocumentKind, TrackingKind
from dockside.sync import EventKind
from edge_agent.devices.scale_reader import ScaleReader, UsedWeight
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.awaiting import AwaitingLabels
from edge_agent.packing.documents import DocumentPlan, plan_documents, shipping_label_plan
from edge_agent.packing.item_check import ItemChecks
from edge_agent.packing.labelling import Labeller
from edge_agent.packing.order_locks import OrderLocks
from edge_agent.packing.parcel_actions import ParcelActions
from edge_agent.packing.reprint import Reprinter
from edge_agent.printing.jobs import SENT_OR_PRINTED, Job, PackAnswer, log_outcome
from edge_agent.printing.queue import PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.numbers import Numbers, NumbersExhausted, TakenNumber
from edge_agent.store.outbox import Outbox

__all__ = ["PACKED_EVENTS", "Packer", "document_number", "tracking_source"]

log = logging.getLogger(__name__)

# What a scan that prints records, in the transaction that marks its job printed.
PACKED_EVENTS = (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)


class Packer:
    """Decides and records the packs of the stations of one agent; the print queue prints.

    It builds the agent's other parcel work on the same collaborators and order locks:
    `parcels` (close, void, hand over), `reprints` (reprint, relabel) and `awaiting` (labels
    awaiting a leased number, which it holds and which print its documents through the Packer).
    """

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
        self._order_locks = OrderLocks()  # one per agent: packs, parcel actions and releases share it
        # After the floor is rebuilt (the floor listens first), tell new scale readers their last weight.
        cache.on_stations_changed(lambda _stations: self.remember_used_weights())
        self.scale_wait_s = scale_wait_s
        self.parcels = ParcelActions(
            cache, floor, queue, outbox, self._order_locks, packer_at=labeller.packer_at
        )
        self.reprints = Reprinter(cache, floor, queue, labeller, outbox, metrics, self.parcels)
        self.awaiting = AwaitingLabels(
            cache, floor, queue, self._order_locks, self.reprints, self.print_documents
        )
        # The item check (issue 16): where the warehouse checks items, a parcel is weighed only
        # once every unit of its order is scanned (edge_agent.packing.item_check).
        self.item_checks = ItemChecks(
            queue.numbers.store, cache, outbox, warehouse=labeller.warehouse, packer_at=labeller.packer_at
        )

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
        async with self._order_locks.hold(order_ref):
            return await self._pack(order_ref, station_code, request_id, parcel, dimensions_mm)

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
                params={"order_ref": order_ref},
            )
        self.parcels.apply_cloud_voids(order_ref, order, parcel)
        packed = self._already_packed(order_ref, parcel)
        if packed is not None:
            return packed
        if order.state == "cancelled":
            raise Conflict(
                f"order {order_ref} was cancelled: do not ship it; set the parcel aside for your supervisor",
                code="order_cancelled",
                params={"order_ref": order_ref},
            )
        self.parcels.refuse_if_closed(order_ref)
        self.item_checks.refuse_unless_checked(order_ref, order)  # items_not_checked (409)
        station = self._floor.get(station_code)
        if station is None:
            raise NotFound(
                f"station {station_code} is not configured for this warehouse: check the station code "
                "on the station page, or add the station in the cloud console",
                code="station_not_found",
                params={"station": station_code},
            )

        expected = order.order.parcels[parcel - 1] if parcel <= len(order.order.parcels) else None
        dims = dimensions_mm or (expected.dimensions_mm if expected is not None else None)
        parcel_count = max(len(order.order.parcels), parcel)

        weight = await station.weigh(self.scale_wait_s, order_ref, parcel)
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
                leased, given = tracking_source(self._cache, order_ref, decision.carrier, parcel, expected)
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
                    done = self.awaiting.hold(job, PACKED_EVENTS)
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
                station.give_back(order_ref, parcel)
        documents = plan_documents(order, parcel, decision)
        # The documents of a label awaiting a number wait with it (`release_awaiting` prints them).
        if documents and not done.decision.awaits_number:
            await self.print_documents(done, order, decision, documents, station, parcel_count, request_id)
        return done.answer()

    async def print_documents(
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
                        done = self.awaiting.hold(job, (EventKind.LABEL_PRINTED,))
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

    def _after_answer(self, done: Job, kind: str) -> None:
        """What follows a recorded job but need not delay the packer's answer: wake the outbox
        sender, count the label, log the outcome. Scheduled with `call_soon` as the answer is
        made, so it runs on the loop right after the answer is written to the station."""
        self._outbox.notify()
        if done.status in SENT_OR_PRINTED:
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
