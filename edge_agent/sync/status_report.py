"""The periodic ReportStatus: version, revision, outbox depth and devices, for the cloud's fleet view."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from dockside.errors import SyncError
from dockside.v1 import sync_pb2 as pb
from edge_agent.sync.link import CloudLink
from edge_agent.sync.transport import SyncTransport

__all__ = ["DEFAULT_REPORT_INTERVAL_S", "StatusReporter"]

log = logging.getLogger(__name__)

DEFAULT_REPORT_INTERVAL_S = 30.0


class StatusReporter:
    """Sends a status report every interval, and at once when the cloud comes back."""

    def __init__(
        self,
        transport: SyncTransport,
        link: CloudLink,
        describe: Callable[[], pb.ReportStatusRequest],
        *,
        interval_s: float = DEFAULT_REPORT_INTERVAL_S,
    ) -> None:
        self._transport = transport
        self._link = link
        self._describe = describe
        self.interval_s = interval_s
        self._now = asyncio.Event()
        self.sent = 0

    def report_now(self) -> None:
        self._now.set()

    async def run(self) -> None:
        while True:
            self._now.clear()
            await self.report_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self.interval_s)

    async def report_once(self) -> bool:
        """Send one report; False (and logged) if the cloud could not be told."""
        try:
            await self._transport.report_status(self._describe())
        except SyncError as exc:
            log.debug("status report not delivered: %s", exc.message)
            return False
        self._link.contact()
        self.sent += 1
        return True
