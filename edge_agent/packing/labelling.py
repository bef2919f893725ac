"""Labels for the print queue: a parcel's document rendered, within its budget, into a new job.

Every label gets the same context, whether its weight came off the scale (a scan) or from the
order (a wave), with the parcel's number, count, dimensions, tracking number and SSCC. Every
label renders within the station's render budget (`dockside.labels.render_budget`), on the loop,
so a hostile template costs the loop at most that budget once. A render that overruns it records
no job: the caller gets a TemplateOverrun naming the template and its version, an
`exception_raised` event goes to the cloud, and the version is set aside at this agent (later
packs and wave labels that need it fail at once) until a new version arrives.

A carrier's own label (sent by the OMS, `edge_agent.packing.documents`) is not rendered from a
template: it is converted for the printer off the loop, by awaiting `carrier_label_bytes` before
the pack's transaction, and the job carries those bytes. A PDF or PNG is drawn in the agent's
label worker process (`edge_agent.printing.label_renderer`), within a time limit: PDFium cannot
be interrupted, and a label built to load slowly must not hold up every other. ZPL is only
checked (text, no PDFium), in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from dockside.errors import TemplateOverrun
from dockside.labels import label_context
from dockside.orders import SyncedOrder
from dockside.rules import Decision, DocumentAction
from dockside.shipping.parcels import DocumentKind, LabelDocument, LabelFormat
from dockside.sync import EventKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.packing.documents import carrier_label_printout, expected_parcel, paper_for
from edge_agent.packing.packers import StationSignIns
from edge_agent.printing.jobs import Job, JobDecision, JobStatus, new_job_id
from edge_agent.printing.label_renderer import DEFAULT_TIME_LIMIT_S, LabelRenderer
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox
from edge_agent.store.templates import ShelvedTemplate

__all__ = ["Labeller"]

log = logging.getLogger(__name__)

_PRINTOUT_MODULE = carrier_label_printout.__module__  # what the label worker imports as it starts


class Labeller:
    """Renders the labels of one warehouse's orders into `sending` jobs, not yet recorded."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        outbox: Outbox,
        *,
        warehouse: str,
        carrier_label_limit_s: float = DEFAULT_TIME_LIMIT_S,
        renderer: LabelRenderer | None = None,
        sign_ins: StationSignIns | None = None,
    ) -> None:
        self._store = store
        # Who is signed in at each station: every job made there carries them.
        self.sign_ins = sign_ins
        self._cache = cache
        self._outbox = outbox
        self.warehouse = warehouse
        # The carrier labels' worker process: started at the first PDF or PNG label, not before;
        # each label gets `carrier_label_limit_s` to be drawn.
        self.renderer = renderer or LabelRenderer(
            time_limit_s=carrier_label_limit_s, preload=(_PRINTOUT_MODULE,)
        )

    async def warm_up(self) -> None:
        """Start the carrier labels' worker process ahead of the first PDF or PNG label (its start
        takes a second or more, which that label's pack would otherwise wait): call it when an
        order with such a label reaches the agent. Does nothing if the worker runs."""
        await self.renderer.warm()

    async def close(self) -> None:
        """Stop the carrier labels' worker process (after the label it is drawing, if any)."""
        await self.renderer.close()

    def label_job(
        self,
        order_ref: str,
        order: SyncedOrder,
        weight_g: int,
        decision: Decision,
        template: ShelvedTemplate | None,
        station_code: str,
        lane: PrinterLane,
        *,
        request_id: str | None,
        weight_source: str | None = None,
        wave_id: int | None = None,
        message: str = "",
        parcel: int = 1,
        parcel_count: int = 1,
        tracking: str | None = None,
        dimensions_mm: tuple[int, int, int] | None = None,
        sscc: str = "",
        document: DocumentKind = DocumentKind.SHIPPING_LABEL,
        printer_role: str | None = None,
        carrier_label: LabelDocument | None = None,
        carrier_label_data: bytes | None = None,
        awaits_number: str = "",
        documents: tuple[DocumentAction, ...] = (),
        job_id: str | None = None,
    ) -> Job:
        """A new `sending` job (not recorded yet) for one document of parcel `parcel` of the order.

        The document is rendered from `template` for the order at `weight_g`, or, for a carrier's
        own label (`carrier_label`, `template` None), is the printer's bytes of it: pass what
        `carrier_label_bytes` made off the loop as `carrier_label_data` (left out, the label is
        converted here, on the calling thread). `tracking` is the parcel's tracking number (None:
        for a carrier label the number the OMS sent with it, else a reference made from the job
        id, unique and traceable). `printer_role` is the document's
        (default the decision's). A wave's label names `weight_source` and `wave_id`, which the
        job records with its decision.

        With `awaits_number` (a carrier with no leased number left) nothing is rendered: the job
        has no label bytes (pass `tracking=""` when the awaited number is the parcel's), and its
        decision names the carrier and keeps the parcel's `documents`, until the number comes
        (`edge_agent.printing.queue`). `job_id` is the id of the recorded job the label is rendered
        for, when it has one (a label that awaited a number); else a new one.
        """
        job_id = job_id or new_job_id()
        if tracking is None and carrier_label is not None:
            # The carrier's label prints the number the OMS sent with it: the job records that one.
            expected = expected_parcel(order, parcel)
            tracking = expected.tracking_number if expected is not None and expected.tracking_number else None
        # Without a carrier number, the job id's last 20 digits (the first 12 are its timestamp).
        tracking_number = tracking if tracking is not None else job_id.upper()[-20:]
        label: bytes
        if awaits_number:
            if template is None:
                raise ValueError("a label awaiting a number is rendered from a template")
            label = b""
            template_name, template_version = template.name, template.version
        elif carrier_label is not None:
            label = carrier_label_data or carrier_label_printout(
                carrier_label, paper_for(lane.config), parcel=parcel, printer=lane.config.id
            )
            template_name, template_version = f"carrier-label-{carrier_label.format.value}", None
        else:
            if template is None:
                raise ValueError("label_job needs a template or a carrier label")
            context = label_context(
                order.order_json,
                weight_g=weight_g,
                carrier=decision.carrier,
                service=decision.service,
                tracking=tracking_number,
                ship_from=self._cache.ship_from(self.warehouse),
                station=station_code,
                job_id=job_id,
                printed_at=datetime.now(UTC).isoformat(timespec="seconds"),
                parcel_number=parcel,
                parcel_count=parcel_count,
                dimensions_mm=dimensions_mm,
                sscc=sscc,
            )
            assert template.compiled is not None  # TemplateShelf.get only returns usable ones
            try:
                label = template.compiled.render(context)
            except TemplateOverrun as exc:
                raise self._set_aside(template, exc, order_ref, station_code) from None
            template_name, template_version = template.name, template.version
        now = now_ms()
        return Job(
            job_id=job_id,
            request_id=request_id,
            order_ref=order_ref,
            station=station_code,
            printer=lane.config.id,
            status=JobStatus.SENDING,
            weight_g=weight_g,
            decision=JobDecision(
                carrier=decision.carrier,
                service=decision.service,
                template=template_name,
                template_version=template_version,
                printer_role=printer_role if printer_role is not None else decision.printer_role,
                weight_source=weight_source,
                wave_id=wave_id,
                dimensions_mm=dimensions_mm,
                sscc=sscc,
                awaits_number=awaits_number,
                documents=documents,
            ),
            created_at_ms=now,
            updated_at_ms=now,
            reprint_of=None,
            reason="",
            label=label,
            message=message,
            parcel=parcel,
            document=document.value,
            tracking_number=tracking_number,
            packer=self.packer_at(station_code),
        )

    def packer_at(self, station_code: str) -> int | None:
        """The id of the packer signed in at the station, or None."""
        return self.sign_ins.current(station_code) if self.sign_ins is not None else None

    async def carrier_label_bytes(self, lane: PrinterLane, label: LabelDocument, *, parcel: int) -> bytes:
        """The bytes that print the OMS's carrier `label` for parcel `parcel` on `lane`'s printer,
        made off the loop: a PDF or PNG in the label worker process, within its time limit, ZPL
        (checked, not drawn) in a thread. Await it before the pack's transaction and hand the
        result to `label_job` as `carrier_label_data`.

        InputError (naming the parcel) when the label cannot be printed on that printer, or takes
        longer than the time limit to draw (`label_render_timeout`), or kills the worker
        (`label_render_failed`). RendererUnavailable when the worker cannot be started.
        """
        paper = paper_for(lane.config)
        printer = lane.config.id
        if label.format is LabelFormat.ZPL:
            return await asyncio.to_thread(
                carrier_label_printout, label, paper, parcel=parcel, printer=printer
            )
        what = f"parcel {parcel}'s carrier label ({label.format.value.upper()})"
        return await self.renderer.render(
            what, carrier_label_printout, label, paper, parcel=parcel, printer=printer
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
