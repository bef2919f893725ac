"""The pack decision: scan -> order -> stable weight -> rules -> label -> the print queue -> answer.

Everything here is local (no call to the cloud, ever) and runs on the agent's event loop with
its single SQLite connection: the database work is a few statements of tens of microseconds
each, cheaper inline than a hop to a worker thread, and running on the loop means the watch
loop and the outbox sender, which use the same connection, can never interleave with a pack's
transaction. Only the slow, blocking device work leaves the loop: the bytes go out through the
printer's own lane thread, and a scale that has no fresh stable weight is waited for in a
thread.

The packer decides whether and what to print; the print queue (`edge_agent.printing.queue`)
prints it: hold or send, at most once, events in the job's transaction, fallback routing. The
same request id returns the first job; an order that already has a job answers
`already_packed` with it; a cancelled order prints nothing.

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

from dockside.errors import Conflict, InputError, NotFound, PrinterError, PrinterUnusable
from dockside.rules import decide
from dockside.sync import EventKind
from edge_agent.devices.scale_reader import ScaleReader, UsedWeight
from edge_agent.devices.stations import StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.labelling import Labeller
from edge_agent.printing.jobs import Job, JobStatus, PackAnswer, log_outcome, new_job_id
from edge_agent.printing.queue import REPRINTED_EVENTS, PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import now_ms
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

    async def pack(self, order_ref: str, station_code: str, request_id: str) -> PackAnswer:
        """Print the order's label at the station; the answer of `POST /api/v1/pack`.

        Scans of one order run one after the other: a second scan (a double click, a retry)
        waits for the first and answers with its job, instead of waiting for a parcel weight
        the first one already took.
        """
        lock = self._order_locks.get(order_ref)
        if lock is None:
            lock = self._order_locks[order_ref] = _OrderLock()
        lock.users += 1
        try:
            async with lock.lock:
                return await self._pack(order_ref, station_code, request_id)
        finally:
            lock.users -= 1
            if not lock.users:
                del self._order_locks[order_ref]

    async def _pack(self, order_ref: str, station_code: str, request_id: str) -> PackAnswer:
        jobs_written = self.jobs.written
        repeated = self._repeat_of(order_ref, request_id)
        if repeated is not None:
            return repeated
        order = self._cache.order(order_ref)
        if order is None:
            raise NotFound(
                f"order {order_ref} is not known at this agent: check the scanned barcode, or wait a "
                "moment for the agent to sync from the cloud and scan again",
                code="order_not_found",
            )
        packed = self._already_packed(order_ref)
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

        weight = await station.weigh(self.scale_wait_s, order_ref)
        # Whether a recorded job used the weight; if not (an error, a repeat found while waiting,
        # nothing sent), it goes back to the scale for the next scan of this parcel.
        spent = False
        try:
            decision = decide(order.order_json, weight.grams, self._cache.ruleset())
            template = self._cache.templates.get(decision.template)
            lane, routed = self._queue.route(station, decision.printer_role)
            job = self._labeller.label_job(
                order_ref,
                order,
                weight.grams,
                decision,
                template,
                station_code,
                lane,
                request_id=request_id,
                message=routed,
            )

            async with lane.lock:
                if self.jobs.written != jobs_written:
                    # Waiting for the scale or the lane let other packs record jobs: ask again.
                    repeated = self._repeat_of(order_ref, request_id) or self._already_packed(order_ref)
                    if repeated is not None:
                        return repeated
                # From here the job is recorded unless the queue says nothing was sent: a `failed`
                # job keeps the weight (a reprint reuses it), a forgotten one does not.
                spent = True
                try:
                    done = await self._queue.print_job(lane, job, PACKED_EVENTS)
                except PrinterError as exc:
                    spent = not exc.nothing_sent
                    log_outcome(log, job, "failed", exc.message)
                    raise
            asyncio.get_running_loop().call_soon(self._after_answer, done, "pack")
            return done.answer()
        finally:
            if not spent:
                station.give_back(order_ref)

    def _after_answer(self, done: Job, kind: str) -> None:
        """What follows a recorded job but need not delay the packer's answer: wake the outbox
        sender, count the label, log the outcome. Scheduled with `call_soon` as the answer is
        made, so it runs on the loop right after the answer is written to the station."""
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind=kind).inc()
        log_outcome(log, done, str(done.status), done.message)

    def _repeat_of(self, order_ref: str, request_id: str) -> PackAnswer | None:
        first = self.jobs.by_request(request_id)
        if first is None:
            return None
        if first.order_ref != order_ref:
            raise Conflict(
                f"request id {request_id} was already used for order {first.order_ref}: "
                "send a new request id for every scan",
                code="request_id_reused",
            )
        return first.answer()

    def _already_packed(self, order_ref: str) -> PackAnswer | None:
        first = self.jobs.first_for_order(order_ref)
        return first.answer("already_packed") if first is not None else None

    # -- reprint -------------------------------------------------------------------------------

    async def reprint(self, job_id: str, reason: str, request_id: str | None = None) -> PackAnswer:
        """Print a job's label again on purpose; records a new job pointing at the old one."""
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
        async with lane.lock:
            done = await self._queue.print_job(lane, job, REPRINTED_EVENTS)
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind="reprint").inc()
        return done.answer()

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
