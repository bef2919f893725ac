"""The agent's clock: printer status polling, the scale watchdog, outbox flushes and status reports.

One apscheduler `AsyncIOScheduler` on the agent's event loop runs five interval jobs:

    printer status   every `printer_poll_s` (about 1 s): ask every printer how it is (`~HS`,
                     DLE EOT, in its lane thread), mark labels lost to a dropped connection
                     `unknown`, and send its held labels once it is ready
    scale watchdog   every `scale_watchdog_s`: restart a reader whose thread died, log changes
    outbox flush     every `outbox_flush_s`: wake the sender (events from a failed attempt)
    status report    every `report_s`: ask the reporter to tell the cloud how the agent is
    privacy purge    every `privacy_purge_s` (hourly): blank the ship-to of orders shipped longer
                     ago than the retention period (`edge_agent.store.privacy`)

The pack path never waits for a poll: it reads what the last poll left on the lane, and a label
sent while a poll waits for its reply goes out at once on the same connection (see
`edge_agent.devices.printer_lane`). A poll of a healthy printer writes nothing to SQLite and logs nothing;
only a change does (a state change is logged, labels put in doubt or held labels sent are
recorded). Every job
coalesces and runs one instance at a time, so a slow printer delays its own next poll, never
piles up. The jobs run on the loop because the store and the lanes live there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import StationFloor
from edge_agent.printing.queue import PrintQueue

__all__ = ["AgentScheduler", "ScheduleSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduleSettings:
    """How often each scheduled job runs, in seconds."""

    printer_poll_s: float = 1.0
    scale_watchdog_s: float = 2.0
    outbox_flush_s: float = 5.0
    report_s: float = 30.0
    privacy_purge_s: float = 3600.0


class AgentScheduler:
    """The scheduled work of one agent; `start()` on its running loop, `stop()` before closing devices."""

    def __init__(
        self,
        floor: StationFloor,
        queue: PrintQueue,
        *,
        flush_outbox: Callable[[], None],
        report_status: Callable[[], None],
        purge_personal_data: Callable[[], object] | None = None,
        settings: ScheduleSettings | None = None,
    ) -> None:
        self.settings = settings or ScheduleSettings()
        self._floor = floor
        self._queue = queue
        self._flush_outbox = flush_outbox
        self._report_status = report_status
        self._purge_personal_data = purge_personal_data
        self._scheduler: Any = None
        self._scale_states: dict[str, str] = {}
        self._polling: dict[str, asyncio.Task[None]] = {}  # printer id -> its poll still running
        self.polls = 0  # completed printer polls, for tests and the status page
        self.scale_restarts = 0

    def start(self) -> None:
        """Add the jobs and start the clock on the running event loop."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        s = self.settings
        jobs: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("printer status", self.poll_printers, s.printer_poll_s),
            ("scale watchdog", self.watch_scales, s.scale_watchdog_s),
            ("outbox flush", self._flush, s.outbox_flush_s),
            ("status report", self._report, s.report_s),
        ]
        if self._purge_personal_data is not None:
            jobs.append(("privacy purge", self._purge, s.privacy_purge_s))
        for name, work, every in jobs:
            scheduler.add_job(
                work,
                "interval",
                seconds=every,
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(every)),
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop the clock and the printer polls still running."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._polling.values()):
            task.cancel()

    # -- the jobs ------------------------------------------------------------------------------

    async def poll_printers(self) -> None:
        """Start a status poll of every printer whose last poll has finished, and wait for them.

        Each printer polls in its own task: a printer that takes its whole connect timeout to
        fail delays its own next poll, never the other printers' polls.
        """
        started = []
        for lane in self._floor.lanes():
            key = lane.config.id
            if key in self._polling:
                continue
            task = asyncio.get_running_loop().create_task(self._poll(lane), name=f"poll {key}")
            self._polling[key] = task
            task.add_done_callback(lambda _task, key=key: self._polling.pop(key, None))  # type: ignore[misc]
            started.append(task)
        if started:
            await asyncio.wait(started)

    async def _poll(self, lane: PrinterLane) -> None:
        try:
            before = lane.state
            await self._queue.poll(lane)
            if lane.state != before:
                log.info("printer %s: %s -> %s (%s)", lane.config.id, before, lane.state, lane.message)
        except Exception:  # one printer's trouble must not stop the others' polls
            log.exception("polling printer %s failed", lane.config.id)
        self.polls += 1

    async def watch_scales(self) -> None:
        """Restart a scale reader whose thread died, and log each scale's state changes."""
        for code, reader in self._floor.scales():
            port = reader.config.port
            state = reader.state
            if self._scale_states.get(port) != state:
                log.info("scale of station %s on %s: %s (%s)", code, port, state, reader.message)
                self._scale_states[port] = state
            if reader.died:
                log.warning("the scale reader of station %s on %s had stopped: restarting it", code, port)
                reader.start()
                self.scale_restarts += 1

    async def _flush(self) -> None:
        self._flush_outbox()

    async def _report(self) -> None:
        self._report_status()

    async def _purge(self) -> None:
        if self._purge_personal_data is None:
            return
        try:
            self._purge_personal_data()
        except Exception:  # a failed purge is retried at the next run; packing goes on
            log.exception("purging personal data of shipped orders failed")
