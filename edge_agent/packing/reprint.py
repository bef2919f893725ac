"""Reprint and relabel: a job's label printed again on purpose, and the render of a label with a number.

A reprint (`POST /api/v1/jobs/{id}/reprint`, with a reason) records a new job pointing at the
old one and prints the same label with the same tracking number. Two cases print the parcel's
label anew instead: the OMS relabelled the parcel after the job printed (another carrier label
or tracking number: the reprint is the label as the order has it now), or the job's leased
number was voided (it ended `unknown` or `failed`: that number never prints again, so the
reprint is a relabel with the carrier's next leased number). A reprint reuses its job's weight
and never touches the scale; a label the cloud voided is voided first, and never printed again.

`render_with_number` renders a document of a parcel again with a leased number, from the
template its job named: a relabel makes a new job of it, and a label that awaited a number
(`edge_agent.packing.awaiting`) its own job.
"""

from __future__ import annotations

import dataclasses

from dockside.errors import Conflict, NotFound, PrinterUnusable
from dockside.orders import SyncedOrder
from dockside.rules import Decision
from dockside.shipping.parcels import DocumentKind, LabelDocument, TrackingKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.documents import expected_parcel
from edge_agent.packing.labelling import Labeller
from edge_agent.packing.parcel_actions import ParcelActions, packer_reason
from edge_agent.printing.jobs import SENT_OR_PRINTED, Job, JobDecision, JobStatus, PackAnswer, new_job_id
from edge_agent.printing.queue import REPRINTED_EVENTS, PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import now_ms
from edge_agent.store.numbers import TakenNumber
from edge_agent.store.outbox import Outbox

__all__ = ["Reprinter", "kept_decision"]


def kept_decision(kept: JobDecision, *, documents: bool = False) -> Decision:
    """The rules' decision a job kept, to render its label again (with its documents if asked)."""
    return Decision(
        carrier=kept.carrier,
        service=kept.service,
        template=kept.template,
        printer_role=kept.printer_role or "label",
        documents=kept.documents if documents else (),
    )


class Reprinter:
    """Reprints and relabels the labels of the stations of one agent; the print queue prints."""

    def __init__(
        self,
        cache: Cache,
        floor: StationFloor,
        queue: PrintQueue,
        labeller: Labeller,
        outbox: Outbox,
        metrics: AgentMetrics,
        parcels: ParcelActions,
    ) -> None:
        self._cache = cache
        self._floor = floor
        self._queue = queue
        self._labeller = labeller
        self._outbox = outbox
        self._metrics = metrics
        self._parcels = parcels
        self.jobs = queue.jobs

    async def reprint(self, job_id: str, reason: str, request_id: str | None = None) -> PackAnswer:
        """Print a job's label again on purpose; records a new job pointing at the old one.

        A reprint is the same label with the same tracking number, except when the job's leased
        number was voided (it ended `unknown` or `failed`): that number never prints again, so
        the reprint renders the parcel's label anew with the next number.
        """
        reason = packer_reason(
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
                params={"job_id": job_id},
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
                self._parcels.apply_cloud_voids(original.order_ref, synced, original.parcel)
                original = self.jobs.get(job_id) or original
        if original.status == JobStatus.VOIDED:
            raise Conflict(
                f"job {job_id}'s label was voided and is never printed again: pack parcel "
                f"{original.parcel} of order {original.order_ref} again for its new label",
                code="job_voided",
                params={"job_id": job_id},
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
                params={"job_id": job_id},
            )
        lane = self._floor.lane(original.printer)
        if lane is None:
            raise PrinterUnusable(
                f"printer {original.printer}, which printed job {job_id}, is no longer configured: "
                "pack the order again at a station with a printer, or add the printer back",
                code="printer_not_configured",
                params={"job_id": job_id},
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
            packer=self._labeller.packer_at(original.station),
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
        if done.status in SENT_OR_PRINTED:
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
            kept_decision(kept),
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
        job = self.render_with_number(original, order, number, lane)
        return dataclasses.replace(
            job, request_id=reprint.request_id, reprint_of=reprint.reprint_of, reason=reprint.reason
        ), number

    def render_with_number(
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
            kept_decision(kept),
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
