"""The print queue: the one place a label job is held, sent, released, put in doubt or recovered.

Scan, reprint and waves hand it a rendered job for a printer lane; the scheduler hands it each
printer's status poll. Every label obeys one rule, written here only:

    printer faulted, or labels already waiting for it  ->  record the job `held` (no byte sent)
    otherwise  ->  insert it `sending` (committed), send, then commit `printed` with its events

A job that prints a leased tracking number takes it (`edge_agent.store.numbers`) in the
transaction that inserts the job, with its `number_used`; a job that ends `failed` or `unknown`,
or is forgotten, voids its number in the transaction that marks it.

Printing is at most once. The job is committed `sending` before its bytes go out, so a crash
during the send leaves a trace that `recover_unfinished` turns `unknown` at the next start (a
person decides; the agent never reprints by itself). The job's outbox events are committed in
the transaction that marks it `printed` (or `held`, or `failed`), never before: a label that did
not print has no `order_packed`.

A printer that refuses the connection (`PrinterUnreachable`: nothing sent, it may come back)
gets the label held. An error that sent nothing and will not clear by itself (`PrinterUnusable`)
forgets the job. A connection that breaks in the middle of a label leaves a `failed` job and an
exception for a person. Held jobs go out once, oldest first, when a poll finds the printer
ready; a poll that finds the printer closed the connection after some labels puts them in
doubt (`unknown`). A station printer with role `fallback` (or `<role>-fallback`) takes the
labels of a faulted one (`route`).

A label that needs a leased number when none is left waits for the number, not for a printer:
`hold_for_number` records it `held` with no bytes (not counted in `lane.held`, never sent by
`release_held`). When the cloud leases more, the packer renders it with the next number and
`print_awaited` fills it in and takes that number in one transaction, marking it `sending` (or
`held` for its printer, counted, if that is in a fault or has labels waiting), then sends it the
way a released held job goes: `label_printed` in the transaction that marks it printed. A crash
before that transaction leaves it awaiting, with no number taken; after it, exactly as a fresh
pack (`unknown` at the next start, its number voided).

Callers hold the lane's lock (`lane.lock`) around `print_job`, so labels on one printer leave in
the order their jobs were written: a scan checks its repeats under it, a wave holds it for its
whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dockside.errors import PrinterError
from dockside.sync import EventKind
from edge_agent.devices.print_confirmation import Confirmation
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import Station, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.printing.confirmation import (
    CONFIRM_IDLE_POLL_S,
    CONFIRM_POLL_S,
    confirm_timeout_from_env,
    settled,
    unconfirmable_message,
)
from edge_agent.printing.jobs import SENT_OR_PRINTED, Job, Jobs, JobStatus, log_outcome
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.store.numbers import Numbers, TakenNumber
from edge_agent.store.outbox import Outbox

__all__ = ["REPRINTED_EVENTS", "PrintQueue"]

log = logging.getLogger(__name__)

# What a reprint records, in the transaction that marks its job printed.
REPRINTED_EVENTS = (EventKind.LABEL_REPRINTED,)


def _held_events(events: tuple[EventKind, ...]) -> tuple[EventKind, ...]:
    """The events of a job that is held instead of printed: the same facts, `label_held` last."""
    printed = (EventKind.LABEL_PRINTED, EventKind.LABEL_REPRINTED)
    return (*(kind for kind in events if kind not in printed), EventKind.LABEL_HELD)


def _wait_message(lane: PrinterLane, station: str, routed: str = "") -> str:
    """What the packer reads of a label held for `lane`: the labels ahead of it, else the printer's
    fault (else `routed`, the note a routed label already carries)."""
    if lane.held and not lane.faulted:
        return (
            f"{lane.name} at {station} is printing {lane.held} waiting "
            f"label{'s' if lane.held != 1 else ''} first: this one follows by itself"
        )
    return routed or lane.held_message(station)


class PrintQueue:
    """Holds, sends and releases the label jobs of every printer of one agent."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        floor: StationFloor,
        outbox: Outbox,
        metrics: AgentMetrics,
        *,
        confirm_timeout_s: float | None = None,
    ) -> None:
        if confirm_timeout_s is None:
            confirm_timeout_s = confirm_timeout_from_env()
        if not 0 < confirm_timeout_s <= 3600:
            raise ValueError(
                f"confirm_timeout_s must be above 0 and at most 3600 seconds, not {confirm_timeout_s}"
            )
        self.confirm_timeout_s = confirm_timeout_s
        self._confirming: dict[str, asyncio.Task[None]] = {}
        # Set (and replaced) whenever a job's status is recorded: wakes `wait_settled`.
        self._changed = asyncio.Event()
        self.job_waiters = 0
        self._confirm_wake: dict[str, asyncio.Event] = {}
        self._store = store
        self._floor = floor
        self._outbox = outbox
        self._metrics = metrics
        self.jobs = Jobs(store)
        self.numbers = Numbers(store, cache, outbox)
        self._rechecks: dict[str, asyncio.Task[None]] = {}
        # After the floor is rebuilt (the floor listens first), count the held jobs of each lane.
        cache.on_stations_changed(lambda _stations: self.count_held())

    # -- printing a job ------------------------------------------------------------------------

    def route(self, station: Station, role: str) -> tuple[PrinterLane, str]:
        """The printer for `role`, or the station's fallback while it is in a fault; and a note why."""
        primary = station.printer_for(role)
        if not primary.faulted:
            return primary, ""
        fallback = station.fallback_for(role)
        if fallback is None or fallback is primary or fallback.faulted or fallback.held:
            return primary, ""
        return fallback, f"{primary.trouble(station.code)}: this label printed on {fallback.name} instead"

    async def print_job(
        self,
        lane: PrinterLane,
        job: Job,
        events: tuple[EventKind, ...],
        extra: Mapping[str, Any] | None = None,
        *,
        number: TakenNumber | None = None,
    ) -> Job:
        """Hold or send a new `sending` job on `lane` (whose lock the caller holds); the job as it ended.

        `events` are the facts the label records once printed (`label_held` replaces the printed
        event when it waits); `extra` adds fields to every event body (a wave's id and position).
        `number` is the leased number the job's label was rendered with (`Numbers.next_number`,
        asked with no `await` since): it is taken in the transaction that inserts the job.
        Raises PrinterError when the label did not print and will not by itself: nothing sent and
        the job forgotten (`exc.nothing_sent`), or the connection broke during the send (a
        `failed` job and an exception for a person).
        """
        if lane.faulted or lane.held:
            return self._hold(lane, job, events, extra, number)
        if number is None:
            self.jobs.insert(job)  # one statement: committed before any byte goes out
        else:
            with self._store.atomic():  # the job, its number and `number_used`: one commit
                self.jobs.insert(job)
                self._take(job, number)
        return await self._deliver(lane, job, events, extra)

    def hold_for_number(
        self, job: Job, events: tuple[EventKind, ...], extra: Mapping[str, Any] | None = None
    ) -> Job:
        """Record `job` held until a leased number of `job.decision.awaits_number` comes (no label
        bytes, no number, not counted as waiting for its printer), with `events` as a held job's
        (`label_held` last, with the job's `message` and `awaits_number`); the job as recorded."""
        if not job.decision.awaits_number or job.label:
            raise ValueError(f"job {job.job_id} is not a label awaiting a number")
        held = dataclasses.replace(job, status=JobStatus.HELD)
        with self._store.atomic():
            self.jobs.insert(held)
            body = {**(extra or {}), "message": held.message, "awaits_number": job.decision.awaits_number}
            self._record(held, _held_events(events), body)
        self._metrics.print_failures.labels(reason="awaits_number").inc()
        return held

    async def print_awaited(self, lane: PrinterLane, job: Job, number: TakenNumber) -> Job:
        """Print a job that awaited a number, now rendered with `number` (`job`: its row with the
        label bytes, tracking number and decision filled in); the job as it ended.

        The caller holds `lane.lock` and asked for `number` (`Numbers.next_number`) with no
        `await` since. One transaction fills the job in, takes `number` with its `number_used`
        and marks the job `sending`, or `held` for its printer (counted) while that is in a fault
        or has labels waiting; then it is sent as `release_held` sends a held job. Raises as
        `print_job` does when the send fails; RuntimeError, recording nothing, when the job no
        longer awaits a number.
        """
        if not job.label:
            raise ValueError(f"job {job.job_id} has no label to print")
        wait = lane.faulted or bool(lane.held)
        if wait:
            message = _wait_message(lane, job.station)
            filled = dataclasses.replace(job, status=JobStatus.HELD, message=message)
        else:
            filled = dataclasses.replace(job, status=JobStatus.SENDING, message="")
        with self._store.atomic():
            self.jobs.fill_awaited(filled)
            self._take(filled, number)
        if wait:
            lane.held += 1
            return filled
        events = REPRINTED_EVENTS if job.reprint_of else (EventKind.LABEL_PRINTED,)
        try:
            done = await self._deliver(lane, filled, events)
        finally:
            self._outbox.notify()
        if done.status in SENT_OR_PRINTED:
            self._metrics.labels_printed.labels(kind="reprint" if job.reprint_of else "pack").inc()
        return done

    def _take(self, job: Job, planned: TakenNumber) -> None:
        """Take the number `job` was rendered with, in the caller's transaction (which it undoes
        by raising if that number is no longer the next one: a bug, never a second use)."""
        taken = self.numbers.take(
            planned.carrier, job.job_id, order_ref=job.order_ref, station=job.station, parcel=job.parcel
        )
        if taken != planned:
            raise RuntimeError(
                f"job {job.job_id} was rendered with {planned.carrier} number {planned.tracking_number}, "
                f"but the next one is {taken.tracking_number if taken else 'none'}: nothing recorded"
            )

    def _hold(
        self,
        lane: PrinterLane,
        job: Job,
        events: tuple[EventKind, ...],
        extra: Mapping[str, Any] | None = None,
        number: TakenNumber | None = None,
    ) -> Job:
        """Record `job` as held for `lane` (no byte sent); it goes out when the printer is ready.

        One transaction inserts the job, takes its `number` if it has one and records `events`
        (`label_held` instead of a printed event).
        """
        message = _wait_message(lane, job.station, job.message)
        held = dataclasses.replace(job, status=JobStatus.HELD, message=message)
        with self._store.atomic():
            self.jobs.insert(held)
            if number is not None:
                self._take(held, number)
            self._record(
                held, _held_events(events), {**(extra or {}), "message": message, "printer_state": lane.state}
            )
        lane.held += 1
        self._metrics.print_failures.labels(reason="held").inc()
        return held

    async def _deliver(
        self,
        lane: PrinterLane,
        job: Job,
        events: tuple[EventKind, ...],
        extra: Mapping[str, Any] | None = None,
    ) -> Job:
        """Send a job recorded `sending`; the job as it ended: `sent` (the printer confirms it
        later, see `_confirm`), or held if nothing went out."""
        started = time.perf_counter()
        try:
            await lane.send(job.label)
            self._metrics.printer_send_seconds.observe(time.perf_counter() - started)
        except PrinterError as exc:
            self._metrics.print_failures.labels(reason=exc.code).inc()
            self.recheck_soon(lane)
            body = {**(extra or {}), "code": exc.code, "message": exc.message}
            if exc.nothing_sent and exc.retry_may_help:
                # The connection was refused before any byte went out: hold the label.
                message = lane.held_message(job.station)
                held = dataclasses.replace(job, status=JobStatus.HELD, message=message)
                with self._store.atomic():
                    self.jobs.set_status(job.job_id, JobStatus.HELD, message=message)
                    self._record(held, _held_events(events), {**body, "message": message})
                lane.held += 1
                return held
            if exc.nothing_sent:
                # Nothing reached the printer and no fault will clear by itself: forget the job.
                with self._store.atomic():
                    self.jobs.delete(job.job_id)
                    self._void(job, exc.code)
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
                self._void(job, "label_failed")
                self._record(job, (EventKind.LABEL_FAILED,), {**body, "maybe_printed": True})
                self._record(
                    job,
                    (EventKind.EXCEPTION_RAISED,),
                    {**body, "reason": "label_maybe_printed", "message": message},
                )
            self._outbox.notify()
            raise PrinterError(message, code=exc.code, params=exc.params) from exc
        if not lane.can_confirm:
            # A spool file or a write-only link: nobody will ever say whether it printed.
            message = unconfirmable_message(lane, job.station, "it cannot report what it printed")
            with self._store.atomic():
                self.jobs.set_status(job.job_id, JobStatus.SENT, sent=True, message=message)
                self._record(job, events, dict(extra or {}))
                self._record(job, (EventKind.LABEL_UNCONFIRMED,), {"message": message, "reason": "no_status"})
            return dataclasses.replace(job, status=JobStatus.SENT, message=message)
        with self._store.atomic():
            self.jobs.set_status(job.job_id, JobStatus.SENT, sent=True)
            self._record(job, events, dict(extra or {}))
        lane.unconfirmed.append(job.job_id)
        self._await_confirmation(lane, job.job_id)
        return dataclasses.replace(job, status=JobStatus.SENT)

    def _void(self, job: Job, reason: str) -> None:
        """Void the numbers `job` took (in the caller's transaction): it did not print for sure."""
        self.numbers.void(job.job_id, reason, order_ref=job.order_ref, station=job.station, parcel=job.parcel)

    def _record(self, job: Job, kinds: tuple[EventKind, ...], extra: dict[str, Any]) -> None:
        # Every status change records an event: wake the pages waiting for a job (they run after
        # this synchronous transaction has committed).
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        body = {**job.event_body(), **extra}
        if job.reprint_of is not None:
            body.update(reprint_of=job.reprint_of, reason=job.reason)
        self._outbox.record_many(kinds, body, order_ref=job.order_ref, station=job.station)

    # -- confirmation ---------------------------------------------------------------------------

    def _await_confirmation(self, lane: PrinterLane, job_id: str) -> None:
        """Track a `sent` job until its printer confirms it: ask the printer right away, then
        every CONFIRM_POLL_S while labels still wait (a task per printer, never in a send's way)."""
        lane.sent.timeout_s = self.confirm_timeout_s
        for given_up in lane.sent.sent(job_id, time.monotonic()):
            log.warning("job %s: too many labels await confirmation on %s; not followed", given_up, lane.name)
        key = lane.config.id
        wake = self._confirm_wake.get(key)
        if key in self._confirming and wake is not None:
            wake.set()  # a label just went out: ask now rather than at the next tick
            return
        wake = self._confirm_wake[key] = asyncio.Event()
        self._confirming[key] = asyncio.get_running_loop().create_task(
            self._confirm_loop(lane, wake), name=f"confirm {key}"
        )

    async def _confirm_loop(self, lane: PrinterLane, wake: asyncio.Event) -> None:
        key = lane.config.id
        try:
            while len(lane.sent):
                wake.clear()
                lost, confirmation = await lane.poll()
                if lost:
                    self._put_in_doubt(lane, lost)
                if confirmation:
                    self._confirm(lane, confirmation)
                if not len(lane.sent):
                    break
                quiet = lane.sent.all_held or bool({"offline", "no_answer"} & lane.faults)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), CONFIRM_IDLE_POLL_S if quiet else CONFIRM_POLL_S)
        except Exception:  # the scheduler's polls still confirm; this loop must not kill the agent
            log.exception("confirming labels on printer %s failed", lane.config.id)
        finally:
            # No await since the last check: a label sent from here on starts a new loop.
            self._confirming.pop(key, None)
            self._confirm_wake.pop(key, None)

    def _confirm(self, lane: PrinterLane, confirmation: Confirmation) -> None:
        """Record what a status answer settled, in one transaction: jobs `printed` (with
        `label_confirmed`), `held` in the printer with its fault's fix (`label_held_in_printer`), or
        left `sent` with a message to check the label (`label_unconfirmed`)."""
        outcomes: list[tuple[Job, str]] = []
        with self._store.atomic():
            for job in self._sent_jobs(confirmation.printed):
                self.jobs.set_status(job.job_id, JobStatus.PRINTED, message="")
                self._record(job, (EventKind.LABEL_CONFIRMED,), {})
                outcomes.append((job, "printed"))
            for job in self._sent_jobs(confirmation.held):
                message = lane.held_message(job.station)
                self.jobs.set_status(job.job_id, JobStatus.HELD, message=message)
                body = {
                    "message": message,
                    "faults": sorted(confirmation.faults),
                    "printer_state": lane.state,
                }
                self._record(job, (EventKind.LABEL_HELD_IN_PRINTER,), body)
                outcomes.append((job, "held"))
            for job in self._sent_jobs(confirmation.unconfirmable):
                why = (
                    f"no answer within {lane.sent.timeout_s:g} s"
                    if lane.can_confirm
                    else "it reports no status"
                )
                message = unconfirmable_message(lane, job.station, why)
                self.jobs.set_status(job.job_id, JobStatus.SENT, message=message)
                self._record(job, (EventKind.LABEL_UNCONFIRMED,), {"message": message, "reason": "no_answer"})
                outcomes.append((job, "unconfirmed"))
        if any(outcome == "held" or job.status == JobStatus.HELD for job, outcome in outcomes):
            self.jobs.written += 1  # the station's held list changed: read it again
        for job, outcome in outcomes:
            if outcome != "printed":
                log_outcome(log, job, outcome, lane.message)
        if outcomes:
            self._outbox.notify()

    def _sent_jobs(self, job_ids: tuple[str, ...]) -> list[Job]:
        """The jobs of `job_ids` still waiting for their printer's word (`sent`, or held in it)."""
        found = []
        for job in map(self.jobs.get, job_ids):
            if job is None or job.sent_at_ms is None:
                continue
            if job.status == JobStatus.SENT or job.status == JobStatus.HELD:
                found.append(job)
        return found

    async def wait_settled(self, job_id: str, wait_s: float) -> Job | None:
        """The job once the printer has had its say (`settled`), or as it is after `wait_s`; None
        when there is no such job. For `GET /api/v1/jobs/{id}?wait_s=`: the page hears a confirmation
        as it is recorded instead of asking again and again."""
        return await self._wait(lambda: self.jobs.get(job_id), wait_s, appear=False)

    async def wait_settled_request(self, request_id: str, wait_s: float) -> Job | None:
        """`wait_settled` for the job a pack's `request_id` makes, which may not exist yet: the page
        asks alongside the pack, so it hears the confirmation without a request after the answer."""
        return await self._wait(lambda: self.jobs.by_request(request_id), wait_s, appear=True)

    async def _wait(self, find: Callable[[], Job | None], wait_s: float, *, appear: bool) -> Job | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        self.job_waiters += 1
        try:
            while True:
                job = find()
                remaining = deadline - loop.time()
                if (job is None and not appear) or (job is not None and settled(job)) or remaining <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
        finally:
            self.job_waiters -= 1

    # -- held jobs, polls and doubt ------------------------------------------------------------

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
                events = REPRINTED_EVENTS if job.reprint_of else (EventKind.LABEL_PRINTED,)
                try:
                    done = await self._deliver(lane, dataclasses.replace(job, message=""), events)
                except PrinterError as exc:
                    log.warning("held job %s broke while being sent: %s", job.job_id, exc.message)
                    break
                if done.status not in SENT_OR_PRINTED:
                    break
                sent += 1
                self._metrics.labels_printed.labels(kind="reprint" if job.reprint_of else "pack").inc()
        self._outbox.notify()
        if sent:
            log.info("printer %s is ready again: %d held label(s) sent", lane.config.id, sent)
        return sent

    async def poll(self, lane: PrinterLane) -> None:
        """One status poll of `lane`: labels put in doubt by a dropped connection, labels the
        printer confirmed (or holds after a fault, or cannot confirm), then held jobs."""
        lost, confirmation = await lane.poll()
        if lost:
            self._put_in_doubt(lane, lost)
        if confirmation:
            self._confirm(lane, confirmation)
        await self.release_held(lane)

    def _put_in_doubt(self, lane: PrinterLane, job_ids: list[str]) -> None:
        """Jobs sent just before the printer dropped the connection: `unknown`, for a person."""
        doubtful = [
            job
            for job in map(self.jobs.get, job_ids)
            if job and (job.status in SENT_OR_PRINTED or (job.status == JobStatus.HELD and job.sent_at_ms))
        ]
        if not doubtful:
            return
        message = (
            f"{lane.name} closed the connection right after this label was sent, so it may not "
            "have printed: check the printer, and reprint it if no label came out"
        )
        self._mark_unknown(doubtful, message, reason="connection_dropped")
        for job in doubtful:
            log_outcome(log, job, "unknown", message)
        self._outbox.notify()
        log.warning(
            "printer %s dropped its connection after %d label(s): marked unknown",
            lane.config.id,
            len(doubtful),
        )

    def _mark_unknown(self, jobs: list[Job], message: str, *, reason: str) -> None:
        """In one transaction: `jobs` become `unknown`, each with `job_unknown` and an exception
        (`reason`) for a person to decide whether the label printed."""
        with self._store.atomic():
            for job in jobs:
                self.jobs.set_status(job.job_id, JobStatus.UNKNOWN, message=message)
                self._void(job, reason)
                self._record(job, (EventKind.JOB_UNKNOWN,), {"message": message})
                self._record(job, (EventKind.EXCEPTION_RAISED,), {"reason": reason, "message": message})

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
        """Cancel the status re-checks and confirmations still running (before the printers close)."""
        tasks = [*self._rechecks.values(), *self._confirming.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._rechecks.clear()
        self._confirming.clear()
        self._confirm_wake.clear()

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
        self._unconfirmed_at_start()
        unfinished = self.jobs.unfinished()
        if not unfinished:
            return []
        message = (
            "the agent stopped while this label was being sent: check whether it printed, and "
            "reprint it if it did not"
        )
        self._mark_unknown(unfinished, message, reason="job_unknown")
        for job in unfinished:
            log.warning(
                "job %s (order %s) was being sent when the agent stopped: now unknown",
                job.job_id,
                job.order_ref,
            )
        return [job.job_id for job in unfinished]

    def _unconfirmed_at_start(self) -> None:
        """At startup: jobs that went out but that their printer had not confirmed (sent, or held in
        its buffer) stay `sent`, each with `label_unconfirmed` and a message to check the label."""
        jobs = self.jobs.unconfirmed()
        if not jobs:
            return
        with self._store.atomic():
            for job in jobs:
                message = (
                    f"the agent stopped before printer {job.printer} confirmed this label: check that "
                    "the label came out, and use Reprint if it did not"
                )
                self.jobs.set_status(job.job_id, JobStatus.SENT, message=message)
                self._record(
                    job, (EventKind.LABEL_UNCONFIRMED,), {"message": message, "reason": "agent_stopped"}
                )
        log.warning("%d label(s) sent before the agent stopped were never confirmed: marked sent", len(jobs))
