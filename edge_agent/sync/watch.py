"""The watch loop: keeps the cache in step with the cloud, from the stored revision onwards.

Each change is applied and its revision stored in the same transaction, so after a crash the
agent resumes exactly after the last change it kept. A SnapshotBegin..SnapshotEnd run is staged
and swapped into the cache in one transaction at its end; a stream that breaks mid-snapshot
leaves the cache as it was. A broken stream is retried with capped, fully jittered exponential
backoff, which resets once a stream has delivered something.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dockside.errors import AuthError, CloudTlsMismatch, SyncError
from dockside.sync import Heartbeat, SnapshotBegin, SnapshotEnd, SyncChange, read_watch_item
from dockside.v1 import sync_pb2 as pb
from edge_agent.metrics import AgentMetrics
from edge_agent.store.cache import Cache, UnusableChange
from edge_agent.store.database import Store
from edge_agent.sync.backoff import Backoff
from edge_agent.sync.link import CloudLink
from edge_agent.sync.transport import SyncTransport

__all__ = ["Watcher"]

log = logging.getLogger(__name__)


class Watcher:
    """Follows the cloud's change stream into the cache, reconnecting for as long as it runs."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        transport: SyncTransport,
        link: CloudLink,
        metrics: AgentMetrics,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._transport = transport
        self._link = link
        self._metrics = metrics
        self.backoff = backoff or Backoff()
        self._stream_up_listeners: list[Callable[[], None]] = []
        self._told = ""  # the TLS problem last logged as an error

    def on_stream_up(self, listener: Callable[[], None]) -> None:
        """Call `listener` each time a stream starts delivering (the cloud is back)."""
        self._stream_up_listeners.append(listener)

    async def run(self) -> None:
        """Follow streams until cancelled."""
        while True:
            try:
                await self.follow()
                reason = "the cloud closed the change stream"
            except AuthError as exc:
                self._link.auth_refused = True
                reason = exc.message
                log.error("the cloud refused this agent: %s", exc.message)
            except SyncError as exc:
                reason = exc.message
                if isinstance(exc, CloudTlsMismatch) and reason != self._told:
                    # A setting to fix, not a passing outage: say it loudly, once per new reason.
                    log.error("cannot sync with the cloud: %s", reason)
                    self._told = reason
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug must not end syncing for good: log it and reconnect like after a break.
                log.exception("the watch loop failed; reconnecting")
                reason = f"the watch loop failed: {exc!r}"
            self._cache.abandon_snapshot()
            if self._link.online:
                self._metrics.reconnects.inc()
            self._link.stream_down(reason)
            delay = self.backoff.next_delay()
            log.info("change stream down (%s); reconnecting in %.2f s", reason, delay)
            await asyncio.sleep(delay)

    async def follow(self) -> None:
        """One stream, from the stored revision, until it ends or breaks."""
        first = True
        async for item in self._transport.watch(self._store.revision()):
            if first:
                first = False
                self.backoff.reset()
                self._told = ""
                self._link.stream_up()
                for listener in self._stream_up_listeners:
                    listener()
            else:
                self._link.contact()
            self.handle(item)

    def handle(self, item: pb.WatchResponse) -> None:
        """Apply one stream item to the cache (synchronously: no other task runs meanwhile)."""
        match read_watch_item(item):
            case SyncChange() as change:
                self._link.saw_revision(change.revision)
                if self._cache.snapshot_open:
                    self._cache.stage(change)
                else:
                    self._apply(change)
            case SnapshotBegin(revision=revision):
                self._link.saw_revision(revision)
                self._cache.begin_snapshot()
            case SnapshotEnd(revision=revision):
                self._finish_snapshot(revision)
            case Heartbeat(revision=revision):
                self._link.saw_revision(revision)
            case None:
                pass  # an item a newer cloud sends that this agent does not know: nothing to do

    def _apply(self, change: SyncChange) -> None:
        if change.revision <= self._store.revision():
            return  # already applied (a resent change after a reconnect)
        refused = False
        try:
            with self._store.atomic():
                try:
                    with self._store.atomic():
                        self._cache.apply(change)
                except UnusableChange as exc:
                    # The cloud's bug: record and move on rather than stall every later change.
                    refused = True
                    self._cache.discard_pending()
                    log.warning("change %d refused: %s", change.revision, exc)
                self._store.set_revision(change.revision)
        except BaseException:
            self._cache.discard_pending()
            raise
        self._cache.after_commit()
        if refused:
            self._metrics.changes_refused.inc()
        else:
            self._metrics.changes_applied.inc()

    def _finish_snapshot(self, revision: int) -> None:
        if not self._cache.snapshot_open:
            log.warning("snapshot end at %d without a begin; ignored", revision)
            return
        try:
            refused = self._cache.finish_snapshot(revision)
        except BaseException:
            self._cache.discard_pending()
            self._cache.abandon_snapshot()
            raise
        self._cache.after_commit()
        self._link.saw_revision(revision)
        self._metrics.snapshots.inc()
        if refused:
            self._metrics.changes_refused.inc(refused)
        log.info("snapshot at revision %d swapped into the cache", revision)
