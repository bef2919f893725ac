"""Waves at the station: a batch of orders whose labels print in one run, in the cloud's order.

A 3PL pre-prints the labels of a wave of single-item orders before picking: the cloud releases
the wave to one station (`ChangeKind.WAVE`: station and order_refs in print order), the station
page lists it, and "Print wave" prints every label on the station's printer, in that order, in
one run that no other label of that printer interleaves with.

There is no parcel on a scale yet, so each label carries the order's **expected weight**
(`expected_weight_g` from the OMS), and the ruleset decides with that weight. The job records
it (`decision.weight_source = "expected"`) and the `order_packed` event says so
(`weight_source: "expected"`, with `wave_id` and `wave_position`); no `weight_captured` event is
sent, because nothing was weighed. An order without an expected weight is skipped: pack it at
the scale.

Printing keeps the pack path's rules, through the same print queue:

- at most once automatically: an order that already has a label (from a scan or an earlier
  wave run) is skipped and reported, never printed again; a cancelled order is skipped with a
  warning; a retried request (same request id) prints nothing more and answers the first run;
- each job goes through the print queue (`PrintQueue.print_job`), as a scanned pack's does:
  committed `sending` before its bytes go out, and `printed` committed with its `order_packed`
  and `label_printed` events in one transaction; a label that breaks mid-send leaves a
  `failed` job and an exception, and no `order_packed`;
- a printer in a fault, or one that refuses the connection mid-wave, gets the rest of the
  wave's labels recorded `held`, in order; they go out by themselves, once, in that order, when
  the printer is ready again, exactly like held labels of single packs.

Each wave label is parcel 1 of its order and gets its tracking number as a scan's would
(`edge_agent.packing.pack.tracking_source`): a `range`/`sscc` carrier's next leased number, asked
under the lane's lock and taken by the queue in the job's transaction; the OMS's own label (ZPL,
PDF or PNG, drawn for the printer) with its tracking number; the job-id reference without an
account. The events carry the parcel's facts like a scan's (parcel 1, its tracking number,
dimensions), and the ruleset's documents for the parcel (packing slip, carton label, customs
declaration) print after its label, each its own job. Out of numbers, the wave stops at that
order: it is reported (`stopped`, with the packer's message) and the orders after it stay
waiting for the next Print wave.

One wave runs at a time per agent; while it runs it holds the lock of each printer it has used,
and it yields to the event loop between labels so status polls, packs at other printers and
the page's progress requests are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from dockside.errors import Conflict, DocksideError, NotFound, PrinterError
from dockside.orders import SyncedOrder
from dockside.rules import Decision, decide
from dockside.shipping.parcels import TrackingKind
from dockside.sync import EventKind
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.documents import plan_documents, shipping_label_plan
from edge_agent.packing.labelling import Labeller
from edge_agent.packing.pack import document_number, tracking_source
from edge_agent.printing.jobs import SENT_OR_PRINTED, Job, JobStatus
from edge_agent.printing.queue import PrintQueue
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox

__all__ = ["WEIGHT_SOURCE", "Wave", "WavePrinter", "wave_number"]

log = logging.getLogger(__name__)

WEIGHT_SOURCE = "expected"
MAX_LISTED_WAVES = 50
_WAVE_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_PRINTABLE = frozenset({"", "created", "released"})
# Skips that a later Print wave will not undo (anything else, such as an order not synced yet
# or a template still on its way, may print next time).
_FINAL_SKIPS = frozenset({"order_cancelled", "already_labelled"})
_LABELLED = frozenset({"packed", "labelled", "shipped"})


def wave_number(text: str) -> int:
    """The wave number in a URL; NotFound (not a crash) for anything that cannot be one."""
    if not _WAVE_ID.match(text):
        raise NotFound(
            f"there is no wave {text[:32]!r} at this agent: a wave number is a whole number like 12",
            code="wave_not_found",
        )
    return int(text)


@dataclass(frozen=True, slots=True)
class Wave:
    """A wave as the cache holds it."""

    wave_id: int
    station: str
    order_refs: list[str]
    created_at: str
    created_by: str


@dataclass(slots=True)
class _Run:
    """What one "Print wave" request did, label by label (its answer and its stored report)."""

    wave: Wave
    request_id: str
    started_at_ms: int
    finished_at_ms: int | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    # The order the wave stopped at (no tracking number left), with the packer's message.
    stopped: dict[str, Any] | None = None

    def report(self, status: str) -> dict[str, Any]:
        # `printed` counts the labels that went out (`sent` or already confirmed `printed`): the
        # report is made as the wave's last label leaves, before its printer can confirm it.
        counts = {"printed": 0, "held": 0}
        for job in self.jobs:
            outcome = "printed" if job["status"] in SENT_OR_PRINTED else job["status"]
            if outcome in counts:
                counts[outcome] += 1
        return {
            "wave_id": self.wave.wave_id,
            "station": self.wave.station,
            "request_id": self.request_id,
            "status": status,
            "total": len(self.wave.order_refs),
            **counts,
            "skipped": self.skipped,
            "failed": self.failed,
            "stopped": self.stopped,
            "jobs": self.jobs,
            "started_at_ms": self.started_at_ms,
            "finished_at_ms": self.finished_at_ms,
        }


class WavePrinter:
    """Lists the waves synced to this agent and prints them, one run per request id."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        floor: StationFloor,
        queue: PrintQueue,
        labeller: Labeller,
        outbox: Outbox,
        metrics: AgentMetrics,
    ) -> None:
        self._store = store
        self._cache = cache
        self._floor = floor
        self._queue = queue
        self._labeller = labeller
        self._outbox = outbox
        self._metrics = metrics
        self._one_at_a_time = asyncio.Lock()
        self._running: dict[int, _Run] = {}  # by wave id
        self._tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}  # by request id

    # -- reads ---------------------------------------------------------------------------------

    def wave(self, wave_id: int) -> Wave | None:
        row = self._store.conn.execute("SELECT body FROM waves WHERE wave_id = ?", (wave_id,)).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        return Wave(
            wave_id,
            str(body["station"]),
            [str(ref) for ref in body["order_refs"]],
            str(body.get("created_at", "")),
            str(body.get("created_by", "")),
        )

    def _known_wave(self, wave_id: int) -> Wave:
        wave = self.wave(wave_id)
        if wave is None:
            raise NotFound(
                f"there is no wave {wave_id} at this agent: check the number, or wait for the agent "
                "to sync from the cloud",
                code="wave_not_found",
                params={"wave_id": wave_id},
            )
        return wave

    def waves(self, station: str | None = None) -> list[dict[str, Any]]:
        """The newest waves (of `station`, else of every station), each with its progress."""
        if station is None:
            rows = self._store.conn.execute(
                "SELECT wave_id FROM waves ORDER BY wave_id DESC LIMIT ?", (MAX_LISTED_WAVES,)
            )
        else:
            rows = self._store.conn.execute(
                "SELECT wave_id FROM waves WHERE station = ? ORDER BY wave_id DESC LIMIT ?",
                (station, MAX_LISTED_WAVES),
            )
        listed = []
        for (wave_id,) in rows.fetchall():
            described = self.describe(wave_id)
            described.pop("orders")
            listed.append(described)
        return listed

    def describe(self, wave_id: int) -> dict[str, Any]:
        """The wave, its progress (n of N printed, held, skipped...) and each order's label."""
        wave = self._known_wave(wave_id)
        jobs = self._first_jobs(wave.order_refs)
        last = self._last_report(wave_id)
        skipped = {entry["order_ref"]: entry for entry in (last or {}).get("skipped", [])}
        states = self._states(wave.order_refs)
        counts = {"printed": 0, "held": 0, "sending": 0, "failed": 0, "skipped": 0, "waiting": 0}
        orders = []
        to_print = 0  # what a new Print wave would try: waiting, or skipped for a reason that may pass
        confirmed = 0
        for position, ref in enumerate(wave.order_refs, start=1):
            job = jobs.get(ref)
            entry: dict[str, Any] = {"order_ref": ref, "position": position, "job_id": None, "message": ""}
            if job is not None:
                # `printed` counts labels that went out, confirmed or not (`confirmed`: those the
                # printer confirmed); the order's entry keeps its job's own status.
                status = "printed" if job[1] in SENT_OR_PRINTED else job[1]
                status = status if status in counts else "failed"  # failed, unknown: a person decides
                confirmed += job[1] == JobStatus.PRINTED
                entry.update(job_id=job[0], message=job[2], job_status=job[1])
            elif states.get(ref) == "cancelled":
                status = "skipped"
                entry.update(code="order_cancelled", message=f"order {ref} was cancelled: no label")
            elif ref in skipped and not (
                # Skipped as labelled by a label voided since: it waits for a label again.
                skipped[ref]["code"] == "already_labelled" and states.get(ref) not in _LABELLED
            ):
                status = "skipped"
                entry.update(code=skipped[ref]["code"], message=skipped[ref]["message"])
            else:
                status = "waiting"
            entry["status"] = status
            counts[status] += 1
            if status == "waiting" or (status == "skipped" and entry["code"] not in _FINAL_SKIPS):
                to_print += 1
            orders.append(entry)
        running = self._running.get(wave_id)
        return {
            "wave_id": wave.wave_id,
            "station": wave.station,
            "created_at": wave.created_at,
            "created_by": wave.created_by,
            "total": len(wave.order_refs),
            **counts,
            "confirmed": confirmed,
            "to_print": to_print,
            "running": running is not None,
            "last_print": None if last is None else {k: v for k, v in last.items() if k != "jobs"},
            "orders": orders,
        }

    def _first_jobs(self, refs: list[str]) -> dict[str, tuple[str, str, str]]:
        """Each order's first shipping label job (not a reprint, not voided): (job_id, status, message)."""
        rows = self._store.conn.execute(
            "SELECT order_ref, job_id, status, message FROM jobs "
            "WHERE order_ref IN (SELECT value FROM json_each(?)) AND reprint_of IS NULL "
            "AND document = 'shipping_label' AND status <> 'voided' "
            "ORDER BY created_at_ms DESC, rowid DESC",
            (json.dumps(refs),),
        )
        # Newest first, so each order's oldest job is written last and stays.
        return {ref: (job_id, status, message) for ref, job_id, status, message in rows}

    def _states(self, refs: list[str]) -> dict[str, str]:
        rows = self._store.conn.execute(
            "SELECT order_ref, state FROM orders WHERE order_ref IN (SELECT value FROM json_each(?))",
            (json.dumps(refs),),
        )
        return dict(rows.fetchall())

    def _last_report(self, wave_id: int) -> dict[str, Any] | None:
        running = self._running.get(wave_id)
        if running is not None:
            return running.report("running")
        row = self._store.conn.execute(
            "SELECT report FROM wave_prints WHERE wave_id = ? "
            "ORDER BY started_at_ms DESC, rowid DESC LIMIT 1",
            (wave_id,),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # -- printing ------------------------------------------------------------------------------

    async def print_wave(self, wave_id: int, station: str, request_id: str) -> dict[str, Any]:
        """Print the wave's labels at `station`, in order, once; the run's report.

        The same request id answers the same run (waiting for it if it is still printing) and
        prints nothing more.
        """
        repeated = await self._repeat_of(wave_id, request_id)
        if repeated is not None:
            return repeated
        wave = self._known_wave(wave_id)
        if wave.station != station:
            raise Conflict(
                f"wave {wave_id} was released to station {wave.station}, not {station}: print it at "
                f"{wave.station}, or release the orders again to {station} in the cloud",
                code="wave_for_another_station",
                params={"wave_id": wave_id},
            )
        found = self._floor.get(station)
        if found is None:
            raise NotFound(
                f"station {station} is not configured at this agent: check the station code, or wait "
                "for the agent to sync its stations",
                code="station_not_found",
            )
        busy = self._running.get(wave_id)
        if busy is not None:
            raise Conflict(
                f"wave {wave_id} is printing right now (request {busy.request_id}): wait for it to "
                "finish; labels already printed are never printed again",
                code="wave_printing",
                params={"wave_id": wave_id},
            )
        self._cache.ruleset()  # no 'default' ruleset: refused here, before a run is recorded
        run = _Run(wave, request_id, now_ms())
        self._store.conn.execute(
            "INSERT INTO wave_prints (request_id, wave_id, station, started_at_ms, report) "
            "VALUES (?, ?, ?, ?, ?)",
            (request_id, wave_id, station, run.started_at_ms, json.dumps(run.report("running"))),
        )
        self._running[wave_id] = run
        task = asyncio.get_running_loop().create_task(self._run(run, found), name=f"wave {wave_id}")
        self._tasks[request_id] = task
        task.add_done_callback(lambda _done: self._tasks.pop(request_id, None))
        # A client that gives up (closed tab, timeout) does not stop the run half-way.
        return await asyncio.shield(task)

    async def _repeat_of(self, wave_id: int, request_id: str) -> dict[str, Any] | None:
        row = self._store.conn.execute(
            "SELECT wave_id, report, finished_at_ms FROM wave_prints WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            return None
        if int(row[0]) != wave_id:
            raise Conflict(
                f"request id {request_id} was already used to print wave {row[0]}: send a new request "
                "id for every Print wave",
                code="request_id_reused",
            )
        task = self._tasks.get(request_id)
        if task is not None:
            return await asyncio.shield(task)
        report = dict(json.loads(row[1]))
        if row[2] is None:
            # The agent stopped during this run: its report is what was committed before.
            report["status"] = "interrupted"
        return report

    async def _run(self, run: _Run, station: Station) -> dict[str, Any]:
        ruleset = self._cache.ruleset()
        lanes: dict[str, PrinterLane] = {}
        try:
            async with self._one_at_a_time, contextlib.AsyncExitStack() as locks:
                for position, ref in enumerate(run.wave.order_refs, start=1):
                    # Between labels the loop serves polls, packs at other printers and the page.
                    await asyncio.sleep(0)
                    await self._print_one(run, station, ruleset, lanes, locks, position, ref)
                    if run.stopped is not None:
                        break
        finally:
            run.finished_at_ms = now_ms()
            report = run.report("done")
            self._store.conn.execute(
                "UPDATE wave_prints SET finished_at_ms = ?, report = ? WHERE request_id = ?",
                (run.finished_at_ms, json.dumps(report), run.request_id),
            )
            self._running.pop(run.wave.wave_id, None)
            self._outbox.notify()
            for lane in lanes.values():
                if lane.held:
                    # Held labels go out once the printer is ready (the scheduler polls too).
                    self._queue.recheck_soon(lane)
        log.info(
            "wave %d at %s: %d printed, %d held, %d skipped, %d failed of %d",
            run.wave.wave_id,
            run.wave.station,
            report["printed"],
            report["held"],
            len(run.skipped),
            len(run.failed),
            report["total"],
            extra={"wave_id": run.wave.wave_id, "station": run.wave.station, "request_id": run.request_id},
        )
        return report

    def _skip(self, run: _Run, position: int, ref: str, code: str, message: str) -> None:
        run.skipped.append({"order_ref": ref, "position": position, "code": code, "message": message})
        log.warning("wave %d skips order %s: %s", run.wave.wave_id, ref, message)

    def _refusal(self, ref: str, order: SyncedOrder | None) -> tuple[str, str] | None:
        """Why `ref` gets no label from this wave, as (code, message); None if it may print."""
        if order is None:
            return "order_not_found", (
                f"order {ref} is not in this agent's cache: wait for the agent to sync, then print "
                "the wave again (printed labels are not printed twice)"
            )
        first = self._queue.jobs.first_for_order(ref)
        if first is not None:
            return "already_labelled", (
                f"order {ref} already has a label (job {first.job_id}, {first.status}): not printed "
                "again; use Reprint on that job if the label is missing"
            )
        if order.state == "cancelled":
            return (
                "order_cancelled",
                f"order {ref} was cancelled: no label printed; keep its items out of the wave",
            )
        if order.state in _LABELLED:
            return "already_labelled", f"order {ref} is already {order.state} in the cloud: not printed again"
        if order.state not in _PRINTABLE:
            return "order_not_printable", f"order {ref} is {order.state}: resolve it in the cloud first"
        weight = order.order.expected_weight_g
        if weight is None or weight <= 0:
            return "no_expected_weight", (
                f"order {ref} has no expected weight to print: pack it at the scale instead"
            )
        return None

    async def _print_one(
        self,
        run: _Run,
        station: Station,
        ruleset: dict[str, Any] | None,
        lanes: dict[str, PrinterLane],
        locks: contextlib.AsyncExitStack,
        position: int,
        ref: str,
    ) -> None:
        order = self._cache.order(ref)
        refusal = self._refusal(ref, order)
        if refusal is not None:
            self._skip(run, position, ref, *refusal)
            return
        assert order is not None
        weight = order.order.expected_weight_g
        assert weight is not None  # _refusal refuses an order without one
        expected = order.order.parcels[0] if order.order.parcels else None
        dims = expected.dimensions_mm if expected is not None else None
        parcel_count = max(1, len(order.order.parcels))
        try:
            decision = decide(
                order.order_json,
                weight,
                ruleset,
                dims,
                parcel_number=1,
                parcel_count=parcel_count,
                ship_from_country=str(self._cache.ship_from(self._labeller.warehouse).get("country", "")),
            )
            plan = shipping_label_plan(order, 1, decision)
            template = None if plan.carrier_label else self._cache.templates.get(decision.template)
            lane = station.printer_for(decision.printer_role)
            if plan.carrier_label is None:
                leased, given = tracking_source(self._cache, ref, decision.carrier, 1, expected)
            else:  # the carrier's own label, as the OMS sent it: its number is the one printed
                leased, given = False, plan.tracking_number or None
        except DocksideError as exc:
            self._skip(run, position, ref, exc.code, exc.message)
            return
        if not await self._lock(lane, lanes, locks):
            # A scan may have printed this order while the wave waited for the printer.
            refusal = self._refusal(ref, self._cache.order(ref))
            if refusal is not None:
                self._skip(run, position, ref, *refusal)
                return
        numbers = self._queue.numbers
        try:
            carrier_label_data = None
            if plan.carrier_label is not None:
                carrier_label_data = await self._labeller.carrier_label_bytes(
                    lane, plan.carrier_label, parcel=1
                )
            number = None
            tracking = given
            if leased:
                # Asked with no `await` until the queue takes it in the job's transaction.
                number = numbers.next_number(decision.carrier)
                if number is None:
                    error = numbers.report_exhausted(decision.carrier, order_ref=ref, station=station.code)
                    run.stopped = {
                        "order_ref": ref,
                        "position": position,
                        "code": error.code,
                        "message": error.message,
                    }
                    self._skip(run, position, ref, error.code, error.message)
                    return
                tracking = number.tracking_number
            job = self._labeller.label_job(
                ref,
                order,
                weight,
                decision,
                template,
                station.code,
                lane,
                request_id=self._label_request_id(run.wave.wave_id, ref),
                weight_source=WEIGHT_SOURCE,
                wave_id=run.wave.wave_id,
                parcel=1,
                parcel_count=parcel_count,
                tracking=tracking,
                dimensions_mm=dims,
                sscc=number.tracking_number
                if number is not None and number.kind == TrackingKind.SSCC
                else "",
                carrier_label=plan.carrier_label,
                carrier_label_data=carrier_label_data,
            )
        except DocksideError as exc:
            self._skip(run, position, ref, exc.code, exc.message)
            return
        job_id = job.job_id
        # What the wave's events add to a scanned pack's: where the weight came from, which wave.
        extra = {"weight_source": WEIGHT_SOURCE, "wave_id": run.wave.wave_id, "wave_position": position}
        # The print queue commits `order_packed` with `printed` (or `label_held`), never before,
        # exactly as for a scanned pack; this wave holds the lane's lock.
        events = (EventKind.ORDER_PACKED, EventKind.LABEL_PRINTED)
        try:
            done = await self._queue.print_job(lane, job, events, extra, number=number)
        except PrinterError as exc:
            run.failed.append(
                {
                    "order_ref": ref,
                    "position": position,
                    "job_id": job_id,
                    "code": exc.code,
                    "message": exc.message,
                }
            )
            log.warning("wave %d: the label of %s failed: %s", run.wave.wave_id, ref, exc.message)
            return
        if done.status in SENT_OR_PRINTED:
            self._metrics.labels_printed.labels(kind="wave").inc()
        run.jobs.append(
            {
                "order_ref": ref,
                "position": position,
                "job_id": job_id,
                "status": str(done.status),
                "message": done.message,
            }
        )
        await self._print_documents(run, station, order, decision, done, parcel_count, lanes, locks, extra)

    def _label_request_id(self, wave_id: int, ref: str) -> str:
        """The request id of the order's wave label: `wave:<id>:<ref>`, and for a relabel (its
        earlier label voided) `wave:<id>:<ref>:relabel<k>`, k counting the voided labels."""
        base = f"wave:{wave_id}:{ref}"
        voided = self._store.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE order_ref = ? AND parcel = 1 AND document = 'shipping_label' "
            "AND reprint_of IS NULL AND status = 'voided'",
            (ref,),
        ).fetchone()[0]
        return f"{base}:relabel{voided}" if voided else base

    async def _lock(
        self, lane: PrinterLane, lanes: dict[str, PrinterLane], locks: contextlib.AsyncExitStack
    ) -> bool:
        """Hold `lane`'s lock for the rest of the run; whether the wave held it already."""
        if lane.config.id in lanes:
            return True
        await locks.enter_async_context(lane.lock)
        lanes[lane.config.id] = lane
        return False

    async def _print_documents(
        self,
        run: _Run,
        station: Station,
        order: SyncedOrder,
        decision: Decision,
        label: Job,
        parcel_count: int,
        lanes: dict[str, PrinterLane],
        locks: contextlib.AsyncExitStack,
        extra: dict[str, Any],
    ) -> None:
        """The ruleset's documents of the order's parcel after its label, each its own job, at most
        once (request id: the label's + ':' + the kind); one that cannot print is logged and
        recorded as the queue does, and never stops the wave."""
        for plan in plan_documents(order, 1, decision):
            request_id = f"{label.request_id}:{plan.kind.value}"
            if self._queue.jobs.by_request(request_id) or self._queue.jobs.first_for_parcel(
                label.order_ref, 1, plan.kind.value
            ):
                continue
            try:
                template = self._cache.templates.get(plan.template) if plan.template else None
                lane, routed = self._queue.route(station, plan.printer_role)
                await self._lock(lane, lanes, locks)
                # No `await` from here until the queue takes the carton's own SSCC with its job.
                number, sscc = document_number(self._queue.numbers, self._cache, decision, plan.kind, label)
                job = self._labeller.label_job(
                    label.order_ref,
                    order,
                    label.weight_g or 0,
                    decision,
                    template,
                    station.code,
                    lane,
                    request_id=request_id,
                    weight_source=WEIGHT_SOURCE,
                    wave_id=run.wave.wave_id,
                    message=routed,
                    parcel=1,
                    parcel_count=parcel_count,
                    tracking=label.tracking_number,
                    dimensions_mm=label.decision.dimensions_mm,
                    sscc=sscc,
                    document=plan.kind,
                    printer_role=plan.printer_role,
                )
                done = await self._queue.print_job(
                    lane, job, (EventKind.LABEL_PRINTED,), extra, number=number
                )
            except DocksideError as exc:
                log.warning(
                    "wave %d: the %s of order %s did not print: %s",
                    run.wave.wave_id,
                    plan.kind.value,
                    label.order_ref,
                    exc.message,
                    extra={"order_ref": label.order_ref, "station": station.code},
                )
                continue
            if done.status in SENT_OR_PRINTED:
                self._metrics.labels_printed.labels(kind="document").inc()
