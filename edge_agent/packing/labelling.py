"""Labels for the print queue: an order's label rendered, within its budget, into a new job.

Every label gets the same context, whether its weight came off the scale (a scan) or from the
order (a wave). Every label renders within the station's render budget
(`dockside.labels.render_budget`), on the loop, so a hostile template costs the loop at most
that budget once. A render that overruns it records no job: the caller gets a TemplateOverrun
naming the template and its version, an `exception_raised` event goes to the cloud, and the
version is set aside at this agent (later packs and wave labels that need it fail at once)
until a new version arrives.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from dockside.errors import TemplateOverrun
from dockside.labels import label_context
from dockside.orders import SyncedOrder
from dockside.rules import Decision
from dockside.sync import EventKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.printing.jobs import Job, JobDecision, JobStatus, new_job_id
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox
from edge_agent.store.templates import ShelvedTemplate

__all__ = ["Labeller"]

log = logging.getLogger(__name__)


class Labeller:
    """Renders the labels of one warehouse's orders into `sending` jobs, not yet recorded."""

    def __init__(self, store: Store, cache: Cache, outbox: Outbox, *, warehouse: str) -> None:
        self._store = store
        self._cache = cache
        self._outbox = outbox
        self.warehouse = warehouse

    def label_job(
        self,
        order_ref: str,
        order: SyncedOrder,
        weight_g: int,
        decision: Decision,
        template: ShelvedTemplate,
        station_code: str,
        lane: PrinterLane,
        *,
        request_id: str | None,
        weight_source: str | None = None,
        wave_id: int | None = None,
        message: str = "",
    ) -> Job:
        """A new `sending` job (not recorded yet) whose label is rendered for the order at `weight_g`.

        A wave's label names `weight_source` and `wave_id`, which the job records with its decision.
        """
        job_id = new_job_id()
        context = label_context(
            order.order_json,
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
            decision=JobDecision(
                carrier=decision.carrier,
                service=decision.service,
                template=template.name,
                template_version=template.version,
                printer_role=decision.printer_role,
                weight_source=weight_source,
                wave_id=wave_id,
            ),
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
