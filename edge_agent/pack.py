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
first job; an order that already has a job answers `already_packed` with it. A printer that
refuses the connection before any byte went out changes nothing but a `label_failed` event.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime
from typing import Any

from dockside.errors import Conflict, InputError, NotFound, PrinterError
from dockside.labels import label_context
from dockside.rules import decide
from dockside.sync import EventKind
from edge_agent.cache import Cache
from edge_agent.jobs import Job, Jobs, JobStatus, new_job_id
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.stations import PrinterLane, StationFloor
from edge_agent.store import Store, now_ms

__all__ = ["NOTHING_SENT_CODES", "Packer"]

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
_PACKED_EVENTS = (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)


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
        self.warehouse = warehouse
        self.scale_wait_s = scale_wait_s

    # -- pack ----------------------------------------------------------------------------------

    async def pack(self, order_ref: str, station_code: str, request_id: str) -> dict[str, Any]:
        """Print the order's label at the station; the answer of `POST /api/v1/pack`."""
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

        weight = await station.weigh(self.scale_wait_s)
        decision = decide(order.body, weight.grams, self._cache.ruleset())
        template = self._cache.templates.get(decision.template)
        lane = station.printer_for(decision.printer_role)
        job_id = new_job_id()
        printed_at = datetime.now(UTC).isoformat(timespec="seconds")
        context = label_context(
            order.body,
            weight_g=weight.grams,
            carrier=decision.carrier,
            service=decision.service,
            # Carrier integration (real tracking numbers) is later work; the job id is unique
            # and traceable meanwhile.
            tracking=job_id.upper()[:20],
            ship_from=self._cache.ship_from(self.warehouse),
            station=station_code,
            job_id=job_id,
            printed_at=printed_at,
        )
        assert template.compiled is not None  # TemplateShelf.get only returns usable ones
        label = template.compiled.render(context)
        now = now_ms()
        job = Job(
            job_id=job_id,
            request_id=request_id,
            order_ref=order_ref,
            station=station_code,
            printer=lane.config.id,
            status=JobStatus.SENDING,
            weight_g=weight.grams,
            decision={
                "carrier": decision.carrier,
                "service": decision.service,
                "template": template.name,
                "template_version": template.version,
                "printer_role": decision.printer_role,
            },
            created_at_ms=now,
            updated_at_ms=now,
            reprint_of=None,
            reason="",
            label=label,
        )

        async with lane.lock:
            if self.jobs.written != jobs_written:
                # Waiting for the scale or the lane let other packs record jobs: ask again.
                repeated = self._repeat_of(order_ref, request_id) or self._already_packed(order_ref)
                if repeated is not None:
                    return repeated
            self.jobs.insert(job)  # one statement: committed before any byte goes out
            await self._send(lane, job)
            with self._store.atomic():
                self.jobs.set_status(job_id, JobStatus.PRINTED)
                self._outbox.record_many(
                    _PACKED_EVENTS, _event_body(job), order_ref=order_ref, station=station_code
                )
        self._outbox.notify()
        self._metrics.labels_printed.labels(kind="pack").inc()
        return job.answer(JobStatus.PRINTED)

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
        if original.status == JobStatus.SENDING:
            raise Conflict(
                f"job {job_id} is being printed right now: wait for it to finish, then reprint if needed",
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
        )
        async with lane.lock:
            self.jobs.insert(job)
            await self._send(lane, job)
            with self._store.atomic():
                self.jobs.set_status(job.job_id, JobStatus.PRINTED)
                body = {**_event_body(job), "reprint_of": job_id, "reason": reason}
                self._outbox.record(
                    EventKind.LABEL_REPRINTED, body, order_ref=job.order_ref, station=job.station
                )
        self._outbox.notify()
        self._metrics.labels_printed.labels(kind="reprint").inc()
        return job.answer(JobStatus.PRINTED)

    # -- failures and recovery -----------------------------------------------------------------

    async def _send(self, lane: PrinterLane, job: Job) -> None:
        """Send the job's label; on PrinterError record what happened, then re-raise."""
        started = time.perf_counter()
        try:
            await lane.send(job.label)
            self._metrics.printer_send_seconds.observe(time.perf_counter() - started)
        except PrinterError as exc:
            self._metrics.print_failures.labels(reason=exc.code).inc()
            body = {**_event_body(job), "code": exc.code, "message": exc.message}
            if exc.code in NOTHING_SENT_CODES:
                # Nothing reached the printer: forget the job, so the order stays unpacked.
                with self._store.atomic():
                    self.jobs.delete(job.job_id)
                    self._outbox.record(
                        EventKind.LABEL_FAILED,
                        {**body, "maybe_printed": False},
                        order_ref=job.order_ref,
                        station=job.station,
                    )
                self._outbox.notify()
                raise
            reason = f"{job.reason} | " if job.reason else ""
            with self._store.atomic():
                self.jobs.set_status(job.job_id, JobStatus.FAILED, f"{reason}{exc.code}: {exc.message}")
                self._outbox.record(
                    EventKind.LABEL_FAILED,
                    {**body, "maybe_printed": True},
                    order_ref=job.order_ref,
                    station=job.station,
                )
            self._outbox.notify()
            raise PrinterError(
                f"{exc.message} (the label may have printed in part: check the printer, and use "
                "Reprint if no good label came out)",
                code=exc.code,
            ) from exc

    def recover_unfinished(self) -> list[str]:
        """At startup: every job still `sending` becomes `unknown`, with an exception event.

        The agent stopped while those labels were being sent, so nobody knows whether they
        printed; a person decides, the agent never reprints them by itself.
        """
        unfinished = self.jobs.unfinished()
        if not unfinished:
            return []
        with self._store.atomic():
            for job in unfinished:
                self.jobs.set_status(job.job_id, JobStatus.UNKNOWN)
                self._outbox.record(
                    EventKind.JOB_UNKNOWN,
                    {
                        **_event_body(job),
                        "message": (
                            "the agent stopped while this label was being sent: check whether it "
                            "printed, and reprint it if it did not"
                        ),
                    },
                    order_ref=job.order_ref,
                    station=job.station,
                )
        for job in unfinished:
            log.warning(
                "job %s (order %s) was being sent when the agent stopped: now unknown",
                job.job_id,
                job.order_ref,
            )
        return [job.job_id for job in unfinished]


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
