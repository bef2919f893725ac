"""The pack path: scan -> order -> stable weight -> rules -> label -> printer -> job and events.

Everything here is local (no call to the cloud, ever) and runs on the agent's event loop with
its single SQLite connection: the database work is a few statements of tens of microseconds
each, cheaper inline than a hop to a worker thread, and running on the loop means the watch
loop and the outbox sender, which use the same connection, can never interleave with a pack's
transaction. Only the slow, blocking device work leaves the loop: the bytes go out through the
printer's own lane thread, and a scale that has no fresh stable weight is waited for in a
thread.

Printing is at most once. The job is committed as `sending` before the bytes go out; then one
transaction marks it `printed` and writes the outbox events. The same request id returns the
first job; an order that already has a job answers `already_packed` with it.

A weight serves one parcel: the pack claims the scale's stable weight for its order, and the
next pack at that scale waits (up to `scale_wait_s`) for a new parcel to settle on it, then
says what to do ("put the parcel for order B on the scale at S1: the weight it shows, 1,234 g,
was already used for order A"). A pack that records no job gives its weight back. Reprints
reuse their job's weight and never touch the scale.

Printer faults never cost a status round trip on the pack path: the scheduler polls every
printer (`~HS`, DLE EOT) every second or so and the pack path reads the lane's last known state.
A printer known to be in a fault, or with labels already waiting, gets the job recorded `held`
(no byte sent, the answer says what to fix); a printer that refuses the connection does too.
Held jobs go out once, in order, when a poll finds the printer ready. A label sent just before
a fault is noticed sits in the printer's buffer and prints after the fix: it is never resent.
A connection that breaks in the middle of a label leaves a `failed` job and an exception for a
person. A station printer with role `fallback` (or `<role>-fallback`) takes the labels of a
faulted one, and the answer says so.

Every label renders within the station's render budget (`dockside.labels.render_budget`), on
the loop, so a hostile template costs the loop at most that budget once. A render that overruns
it records no job: the pack fails with a message naming the template and its version, an
`exception_raised` event goes to the cloud, and the version is set aside at this agent (later
packs and wave labels that need it fail at once) until a new version arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dockside.errors import Conflict, InputError, NotFound, PrinterError, TemplateOverrun
from dockside.labels import label_context
from dockside.rules import Decision, decide
from dockside.sync import EventKind
from edge_agent.devices.scale_reader import ScaleReader, UsedWeight
from edge_agent.devices.stations import PrinterLane, Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.printing.jobs import Job, Jobs, JobStatus, new_job_id
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox
from edge_agent.store.templates import ShelvedTemplate

__all__ = ["NOTHING_SENT_CODES", "PACKED_EVENTS", "Packer"]

log = logging.getLogger(__name__)

# PrinterError codes raised before any byte reached the printer: the label surely did not print.
NOTHING_SENT_CODES = frozenset(
    {
        "printer_unreachable",
        "printer_not_configured",
        "printer_language_unsupported",
        "printer_connection_unsupported",
    }
)
MAX_REASON_CHARS = 500
# What a scan that prints records, in the transaction that marks its job printed.
PACKED_EVENTS = (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)
_REPRINTED_EVENTS = (EventKind.LABEL_REPRINTED,)


def _held_events(events: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
    """The events of a job that is held instead of printed: the same facts, `label_held` last."""
    printed = (EventKind.LABEL_PRINTED, EventKind.LABEL_REPRINTED)
    return (*(kind for kind in events if kind not in printed), EventKind.LABEL_HELD)


@dataclasses.dataclass
class _OrderLock:
    """Serialises the scans of one order; dropped when no scan of it is running or waiting."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class Packer:
    """Packs orders and reprints labels for the stations of one agent."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        floor: StationFloor,
        outbox: Outbox,
        metrics: AgentMetrics,
        *,
        warehouse: str,
        scale_wait_s: float = 3.0,
    ) -> None:
        self._store = store
        self._cache = cache
        self._floor = floor
        self._outbox = outbox
        self._metrics = metrics
        self.jobs = Jobs(store)
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        self._order_locks: dict[str, _OrderLock] = {}  # orders being packed now
        # After the floor is rebuilt (the floor listens first), count the held jobs of each lane.
        cache.on_stations_changed(lambda _stations: self._floor_changed())
        self.warehouse = warehouse
        self.scale_wait_s = scale_wait_s

    # -- pack ----------------------------------------------------------------------------------

    async def pack(self, order_ref: str, station_code: str, request_id: str) -> dict[str, Any]:
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

    async def _pack(self, order_ref: str, station_code: str, request_id: str) -> dict[str, Any]:
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
            decision = decide(order.body, weight.grams, self._cache.ruleset())
            template = self._cache.templates.get(decision.template)
            lane, routed = self._route(station, decision.printer_role)
            job = self.label_job(
                order_ref,
                order.body,
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
                if lane.faulted or lane.held:
                    done = self.hold(lane, job, PACKED_EVENTS)
                else:
                    self.jobs.insert(job)  # one statement: committed before any byte goes out
                    spent = True
                    try:
                        done = await self.deliver(lane, job, PACKED_EVENTS)
                    except PrinterError as exc:
                        # A `failed` job keeps the weight (a reprint reuses it); a forgotten one does not.
                        spent = exc.code not in NOTHING_SENT_CODES
                        _log_outcome(job, "failed", exc.message)
                        raise
                spent = True
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
        _log_outcome(done, str(done.status), done.message)

    def label_job(
        self,
        order_ref: str,
        order: dict[str, Any],
        weight_g: int,
        decision: Decision,
        template: ShelvedTemplate,
        station_code: str,
        lane: PrinterLane,
        *,
        request_id: str | None,
        decision_extra: dict[str, Any] | None = None,
        message: str = "",
    ) -> Job:
        """A new `sending` job (not recorded yet) whose label is rendered for the order at `weight_g`.

        Every label gets the same context, whether its weight came off the scale (a scan) or
        from the order (a wave); `decision_extra` adds to what the job records of the decision.
        """
        job_id = new_job_id()
        context = label_context(
            order,
            weight_g=weight_g,
            carrier=decision.carrier,
            service=decision.service,
            # Carrier integration (real tracking numbers) is later work; the job id is unique
            # and traceable meanwhile. Its last 20 digits: the first 12 are its timestamp.
            tracking=job_id.upper()[-20:],
            ship_from=self._cache.ship_from(self.warehouse),
            station=station_code,
            job_id=job_id,
            printed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        assert template.compiled is not None  # TemplateShelf.get only returns usable ones
        try:
            label = template.compiled.render(context)
        except TemplateOverrun as exc:
            raise self._set_aside(template, exc, order_ref, station_code) from None
        now = now_ms()
        return Job(
            job_id=job_id,
            request_id=request_id,
            order_ref=order_ref,
            station=station_code,
            printer=lane.config.id,
            status=JobStatus.SENDING,
            weight_g=weight_g,
            decision={
                "carrier": decision.carrier,
                "service": decision.service,
                "template": template.name,
                "template_version": template.version,
                "printer_role": decision.printer_role,
                **(decision_extra or {}),
            },
            created_at_ms=now,
            updated_at_ms=now,
            reprint_of=None,
            reason="",
            label=label,
            message=message,
        )

    def _set_aside(
        self, template: ShelvedTemplate, exc: TemplateOverrun, order_ref: str, station_code: str
    ) -> TemplateOverrun:
        """A template version whose render overran: the error for this job, and the version set aside.

        The first time, an `exception_raised` event tells the cloud; later packs that need the
        version fail at once with the same message (`TemplateShelf.get`) until a new one arrives.
        """
        overrun = TemplateOverrun(
            f"template {template.name} v{template.version} exceeded its render budget: {exc.message}; "
            "fix the template and publish a new version (this agent sets it aside until then)",
            code=exc.code,
        )
        if self._cache.templates.set_aside(template.name, template.version, overrun):
            body = {
                "reason": "template_over_budget",
                "code": exc.code,
                "template": template.name,
                "template_version": template.version,
                "message": overrun.message,
            }
            with self._store.atomic():
                self._outbox.record_many(
                    (EventKind.EXCEPTION_RAISED,), body, order_ref=order_ref, station=station_code
                )
            self._outbox.notify()
            log.error(
                "template %s v%d set aside: %s",
                template.name,
                template.version,
                exc.message,
                extra={"order_ref": order_ref, "station": station_code, "template": template.name},
            )
        return overrun

    def _route(self, station: Station, role: str) -> tuple[PrinterLane, str]:
        """The printer for `role`, or the station's fallback while it is in a fault; and a note why."""
        primary = station.printer_for(role)
        if not primary.faulted:
            return primary, ""
        fallback = station.fallback_for(role)
        if fallback is None or fallback is primary or fallback.faulted or fallback.held:
            return primary, ""
        return fallback, f"{primary.trouble(station.code)}: this label printed on {fallback.name} instead"

    def _repeat_of(self, order_ref: str, request_id: str) -> dict[str, Any] | None:
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

    def _already_packed(self, order_ref: str) -> dict[str, Any] | None:
        first = self.jobs.first_for_order(order_ref)
        return first.answer("already_packed") if first is not None else None

    # -- reprint -------------------------------------------------------------------------------

    async def reprint(self, job_id: str, reason: str, request_id: str | None = None) -> dict[str, Any]:
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
            raise PrinterError(
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
            if lane.faulted or lane.held:
                done = self.hold(lane, job, _REPRINTED_EVENTS)
            else:
                self.jobs.insert(job)
                done = await self.deliver(lane, job, _REPRINTED_EVENTS)
        self._outbox.notify()
        if done.status == JobStatus.PRINTED:
            self._metrics.labels_printed.labels(kind="reprint").inc()
        return done.answer()

    # -- held jobs, sends and failures ---------------------------------------------------------

    def hold(
        self,
        lane: PrinterLane,
        job: Job,
        events: tuple[EventKind, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        """Record `job` as held for `lane` (no byte sent); it goes out when the printer is ready.

        One transaction inserts the job and records `events` (`label_held` instead of a
        printed event); `extra` adds fields to every event body (a wave's id and position).
        """
        message = job.message or lane.held_message(job.station)
        if lane.held and not lane.faulted:
            message = (
                f"{lane.name} at {job.station} is printing {lane.held} waiting "
                f"label{'s' if lane.held != 1 else ''} first: this one follows by itself"
            )
        held = dataclasses.replace(job, status=JobStatus.HELD, message=message)
        with self._store.atomic():
            self.jobs.insert(held)
            self._record(
                held, _held_events(events), {**(extra or {}), "message": message, "printer_state": lane.state}
            )
        lane.held += 1
        self._metrics.print_failures.labels(reason="held").inc()
        return held

    async def deliver(
        self,
        lane: PrinterLane,
        job: Job,
        events: tuple[EventKind, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        """Send a job recorded `sending`; the job as it ended: printed, or held if nothing went out.

        `events` are committed in the transaction that marks the job printed (or held), never
        before: a label that did not print has no `order_packed`. `extra` adds fields to every
        event body. Raises PrinterError when the connection broke during the send: the job is
        `failed`, an exception is raised for a person, and the label is never sent again by itself.
        """
        started = time.perf_counter()
        try:
            await lane.send(job.label)
            self._metrics.printer_send_seconds.observe(time.perf_counter() - started)
        except PrinterError as exc:
            self._metrics.print_failures.labels(reason=exc.code).inc()
            self.recheck_soon(lane)
            body = {**(extra or {}), "code": exc.code, "message": exc.message}
            if exc.code == "printer_unreachable":
                # The connection was refused before any byte went out: hold the label.
                message = lane.held_message(job.station)
                held = dataclasses.replace(job, status=JobStatus.HELD, message=message)
                with self._store.atomic():
                    self.jobs.set_status(job.job_id, JobStatus.HELD, message=message)
                    self._record(held, _held_events(events), {**body, "message": message})
                lane.held += 1
                return held
            if exc.code in NOTHING_SENT_CODES:
                # Nothing reached the printer and no fault will clear by itself: forget the job.
                with self._store.atomic():
                    self.jobs.delete(job.job_id)
                    self._record(job, (EventKind.LABEL_FAILED,), {**body, "maybe_printed": False})
                raise
            message = (
                f"{exc.message} (the label may have printed in part: check the printer, and use "
                "Reprint if no good label came out)"
            )
            reason = f"{job.reason} | " if job.reason else ""
            with self._store.atomic():
                self.jobs.set_status(
                    job.job_id, JobStatus.FAILED, f"{reason}{exc.code}: {exc.message}", message=message
                )
                self._record(job, (EventKind.LABEL_FAILED,), {**body, "maybe_printed": True})
                self._record(
                    job,
                    (EventKind.EXCEPTION_RAISED,),
                    {**body, "reason": "label_maybe_printed", "message": message},
                )
            self._outbox.notify()
            raise PrinterError(message, code=exc.code) from exc
        with self._store.atomic():
            self.jobs.set_status(job.job_id, JobStatus.PRINTED)
            self._record(job, events, dict(extra or {}))
        lane.unconfirmed.append(job.job_id)
        return dataclasses.replace(job, status=JobStatus.PRINTED)

    def _record(self, job: Job, kinds: tuple[EventKind, ...], extra: dict[str, Any]) -> None:
        body = {**_event_body(job), **extra}
        if job.reprint_of is not None:
            body.update(reprint_of=job.reprint_of, reason=job.reason)
        self._outbox.record_many(kinds, body, order_ref=job.order_ref, station=job.station)

    async def release_held(self, lane: PrinterLane) -> int:
        """Send the printer's held jobs, oldest first, while it stays ready; how many went out.

        Each job is marked `sending` (committed) before its bytes go out, exactly like a fresh
        pack, so a crash here leaves an `unknown` job, never a second copy.
        """
        if not lane.held or lane.faulted:
            return 0
        sent = 0
        async with lane.lock:
            while lane.held and not lane.faulted:
                job = self.jobs.next_held(lane.config.id)
                if job is None:
                    lane.held = 0
                    break
                self.jobs.set_status(job.job_id, JobStatus.SENDING, message="")
                lane.held -= 1
                events = _REPRINTED_EVENTS if job.reprint_of else (EventKind.LABEL_PRINTED,)
                try:
                    done = await self.deliver(lane, dataclasses.replace(job, message=""), events)
                except PrinterError as exc:
                    log.warning("held job %s broke while being sent: %s", job.job_id, exc.message)
                    break
                if done.status != JobStatus.PRINTED:
                    break
                sent += 1
                self._metrics.labels_printed.labels(kind="reprint" if job.reprint_of else "pack").inc()
        self._outbox.notify()
        if sent:
            log.info("printer %s is ready again: %d held label(s) sent", lane.config.id, sent)
        return sent

    async def poll(self, lane: PrinterLane) -> None:
        """One status poll of `lane`: labels put in doubt by a dropped connection, then held jobs."""
        lost = await lane.check()
        if lost:
            self._put_in_doubt(lane, lost)
        await self.release_held(lane)

    def _put_in_doubt(self, lane: PrinterLane, job_ids: list[str]) -> None:
        """Jobs sent just before the printer dropped the connection: `unknown`, for a person."""
        doubtful = [job for job in map(self.jobs.get, job_ids) if job and job.status == JobStatus.PRINTED]
        if not doubtful:
            return
        message = (
            f"{lane.name} closed the connection right after this label was sent, so it may not "
            "have printed: check the printer, and reprint it if no label came out"
        )
        with self._store.atomic():
            for job in doubtful:
                self.jobs.set_status(job.job_id, JobStatus.UNKNOWN, message=message)
                self._record(job, (EventKind.JOB_UNKNOWN,), {"message": message})
                self._record(
                    job, (EventKind.EXCEPTION_RAISED,), {"reason": "connection_dropped", "message": message}
                )
        for job in doubtful:
            _log_outcome(job, "unknown", message)
        self._outbox.notify()
        log.warning(
            "printer %s dropped its connection after %d label(s): marked unknown",
            lane.config.id,
            len(doubtful),
        )

    def recheck_soon(self, lane: PrinterLane) -> None:
        """Ask the printer how it is now (after a send error), and send held jobs if it is ready."""
        if lane.config.id in self._rechecks:
            return

        async def recheck() -> None:
            try:
                await self.poll(lane)
            finally:
                self._rechecks.pop(lane.config.id, None)

        self._rechecks[lane.config.id] = asyncio.get_running_loop().create_task(
            recheck(), name=f"recheck {lane.config.id}"
        )

    async def stop(self) -> None:
        """Cancel the status re-checks still running (before the printers close)."""
        tasks = list(self._rechecks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._rechecks.clear()

    def _floor_changed(self) -> None:
        self.count_held()
        self.remember_used_weights()

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

    def count_held(self) -> None:
        """At start and after the floor changes: how many held jobs wait for each printer."""
        held = self.jobs.held_by_printer()
        for lane in self._floor.lanes():
            lane.held = held.get(lane.config.id, 0)

    def recover_unfinished(self) -> list[str]:
        """At startup: every job still `sending` becomes `unknown`, with an exception event.

        The agent stopped while those labels were being sent, so nobody knows whether they
        printed; a person decides, the agent never reprints them by itself.
        """
        unfinished = self.jobs.unfinished()
        if not unfinished:
            return []
        message = (
            "the agent stopped while this label was being sent: check whether it printed, and "
            "reprint it if it did not"
        )
        with self._store.atomic():
            for job in unfinished:
                self.jobs.set_status(job.job_id, JobStatus.UNKNOWN, message=message)
                self._record(job, (EventKind.JOB_UNKNOWN,), {"message": message})
                self._record(
                    job, (EventKind.EXCEPTION_RAISED,), {"reason": "job_unknown", "message": message}
                )
        for job in unfinished:
            log.warning(
                "job %s (order %s) was being sent when the agent stopped: now unknown",
                job.job_id,
                job.order_ref,
            )
        return [job.job_id for job in unfinished]


def _log_outcome(job: Job, outcome: str, detail: str) -> None:
    """One log line per pack outcome (printed, held, failed, unknown), with the ids to find it by."""
    ids = {"order_ref": job.order_ref, "job_id": job.job_id, "station": job.station, "printer": job.printer}
    level = logging.INFO if outcome == "printed" else logging.WARNING
    log.log(level, "pack %s: %s%s", outcome, job.order_ref, f" ({detail})" if detail else "", extra=ids)


def _event_body(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "request_id": job.request_id,
        "weight_g": job.weight_g,
        "carrier": job.decision.get("carrier", ""),
        "service": job.decision.get("service", ""),
        "template": job.decision.get("template", ""),
        "template_version": job.decision.get("template_version"),
        "printer": job.printer,
    }
