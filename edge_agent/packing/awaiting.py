"""Labels awaiting a leased number: held when a carrier's numbers run out, printed when more come.

With no leased number (`range`, `sscc`) of the decided carrier left, a parcel is still packed
(its weight spent): its label is recorded `held`, awaiting a number, with a message for the
packer (`hold`), and its documents wait with it; a carton label whose own SSCC account has run
out waits the same way. When the cloud leases more (and at start) `release_awaiting` prints
each by itself, oldest first, rendered with its carrier's next number as a relabel is
(`edge_agent.packing.reprint`), then the parcel's documents (through the `PrintDocuments` it
was given: the Packer's). A label is never printed twice, nor its number used twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from dockside.errors import DocksideError, PrinterError
from dockside.orders import SyncedOrder
from dockside.rules import Decision
from dockside.shipping.parcels import DocumentKind
from dockside.sync import EventKind
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.packing.documents import DocumentPlan, plan_documents
from edge_agent.packing.order_locks import OrderLocks
from edge_agent.packing.reprint import Reprinter, kept_decision
from edge_agent.printing.jobs import Job, JobStatus, log_outcome
from edge_agent.printing.queue import PrintQueue
from edge_agent.store.cache import Cache

__all__ = ["AwaitingLabels", "PrintDocuments"]

log = logging.getLogger(__name__)


# What prints a parcel's documents after its shipping label, each at most once (the Packer's
# `print_documents`): label, order, decision, documents, station, parcel count, request id.
PrintDocuments = Callable[
    [Job, SyncedOrder, Decision, list[DocumentPlan], Station, int, str], Awaitable[None]
]


class AwaitingLabels:
    """Holds the labels of one agent that await a leased number, and prints them when one comes."""

    def __init__(
        self,
        cache: Cache,
        floor: StationFloor,
        queue: PrintQueue,
        order_locks: OrderLocks,
        reprints: Reprinter,
        print_documents: PrintDocuments,
    ) -> None:
        self._cache = cache
        self._floor = floor
        self._queue = queue
        self._order_locks = order_locks
        self._reprints = reprints
        self._print_documents = print_documents
        self.jobs = queue.jobs
        # The carriers whose numbers labels are awaiting (read at start, kept as labels wait and
        # go), so a lease change with nothing awaiting costs no query.
        self._awaiting = {job.decision.awaits_number for job in self.jobs.awaiting_number()}
        self._releasing: asyncio.Task[None] | None = None
        self._release_again = False
        cache.on_number_leases_changed(self.release_awaiting_soon)

    def hold(self, job: Job, events: tuple[EventKind, ...]) -> Job:
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
        its carrier is asked for, the label rendered with it (`Reprinter.render_with_number`, as a
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
        async with self._order_locks.hold(waiting.order_ref):
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
                    rendered = self._reprints.render_with_number(job, order, number, lane, same_job=True)
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
                decision = kept_decision(kept, documents=True)
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
