"""An in-memory cloud behind the `SyncTransport` interface, for tests and dry runs.

Like httpx's MockTransport, it lets the sync engine's resume, snapshot, retry and outbox logic
run with no network. It behaves like the cloud's contract says: a change log with strictly
increasing revisions, a compaction horizon below which a watcher gets a snapshot, live changes
after the backlog, idempotent event delivery by event id. Faults are injected on purpose:
failing calls, streams that break after some items, events refused for good.

Thread-safe where tests need it: `publish()` may be called from any thread while the watcher
runs on the agent's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from dockside.errors import AuthError, SyncError
from dockside.v1 import sync_pb2 as pb

__all__ = ["MemoryTransport"]

Refusal = Callable[[pb.EdgeEvent], tuple[str, str] | None]


class MemoryTransport:
    """A scriptable in-memory cloud for one warehouse."""

    def __init__(self, *, warehouse: str = "WH1", heartbeat_every_s: float | None = None) -> None:
        self.warehouse = warehouse
        self.heartbeat_every_s = heartbeat_every_s
        self._lock = threading.Lock()
        self._log: list[pb.Change] = []
        self._head = 0
        self.horizon = 0  # changes at or below it are compacted away: older watchers get a snapshot
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        # enrollment
        self.tokens: dict[str, str] = {}  # token -> agent id, one-time
        self.credentials: dict[str, str] = {}  # credential -> agent id
        # what the agent sent
        self.received: dict[str, pb.EdgeEvent] = {}
        self.deliveries: list[list[str]] = []  # event ids per PushEvents call, duplicates included
        self.reports: list[pb.ReportStatusRequest] = []
        self.watch_calls: list[int] = []
        # faults
        self.watch_failures: list[BaseException] = []  # raised by the next watch() calls, in order
        self.push_failures: list[BaseException] = []  # raised by the next push_events() calls
        self.break_stream_after: int | None = None  # items per stream before it breaks
        self.lose_answers = 0  # the next N PushEvents are applied but their answer is lost
        self.refuse: Refusal = lambda event: None
        self.closed = False

    # -- scripting the cloud ---------------------------------------------------------------

    def publish(self, kind: str, key: str, body: Mapping[str, Any] | None = None) -> int:
        """Append a change (a delete when `body` is None); returns its revision."""
        with self._lock:
            self._head += 1
            change = pb.Change(
                revision=self._head,
                kind=kind,
                key=key,
                deleted=body is None,
                body=b"" if body is None else json.dumps(body).encode(),
            )
            self._log.append(change)
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return change.revision

    @property
    def head(self) -> int:
        with self._lock:
            return self._head

    def compact(self) -> None:
        """Forget the log up to the head: every watcher below it now gets a snapshot."""
        with self._lock:
            self.horizon = self._head

    def add_token(self, token: str, agent_id: str = "agent-1") -> None:
        self.tokens[token] = agent_id

    # -- SyncTransport ---------------------------------------------------------------------

    async def enroll(self, request: pb.EnrollRequest) -> pb.EnrollResponse:
        agent_id = self.tokens.pop(request.token, None)
        if agent_id is None:
            raise AuthError(
                "the enrollment token is not valid (wrong, expired or already used): "
                "create a new one in the cloud console"
            )
        credential = f"cred-{agent_id}-{len(self.credentials) + 1}"
        self.credentials[credential] = agent_id
        return pb.EnrollResponse(agent_id=agent_id, credential=credential, warehouse=self.warehouse)

    async def watch(self, after_revision: int) -> AsyncIterator[pb.WatchResponse]:
        self.watch_calls.append(after_revision)
        if self.watch_failures:
            raise self.watch_failures.pop(0)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        waiter = (loop, wake)
        with self._lock:
            self._waiters.append(waiter)
        sent = 0
        try:
            position = after_revision
            if after_revision < self.horizon:
                snapshot, position = self._snapshot()
                for item in snapshot:
                    self._maybe_break(sent)
                    yield item
                    sent += 1
            while True:
                wake.clear()
                for change in self._changes_after(position):
                    self._maybe_break(sent)
                    yield pb.WatchResponse(change=change)
                    sent += 1
                    position = change.revision
                if self.heartbeat_every_s is None:
                    await wake.wait()
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), self.heartbeat_every_s)
                except TimeoutError:
                    self._maybe_break(sent)
                    yield pb.WatchResponse(heartbeat=pb.Heartbeat(revision=self.head))
                    sent += 1
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    async def push_events(self, events: Sequence[pb.EdgeEvent]) -> pb.PushEventsResponse:
        if self.push_failures:
            raise self.push_failures.pop(0)
        self.deliveries.append([event.event_id for event in events])
        answer = pb.PushEventsResponse()
        for event in events:
            refusal = self.refuse(event)
            if refusal is not None:
                answer.rejected.append(
                    pb.RejectedEvent(event_id=event.event_id, code=refusal[0], message=refusal[1])
                )
                continue
            self.received.setdefault(event.event_id, event)
            answer.acked.append(event.event_id)
        if self.lose_answers:
            self.lose_answers -= 1
            raise SyncError("the answer was lost on the way back (injected)", code="cloud_unreachable")
        return answer

    async def report_status(self, request: pb.ReportStatusRequest) -> pb.ReportStatusResponse:
        self.reports.append(request)
        return pb.ReportStatusResponse(server_time_ms=request.sent_at_ms)

    async def close(self) -> None:
        self.closed = True

    # -- internals -------------------------------------------------------------------------

    def _changes_after(self, revision: int) -> list[pb.Change]:
        with self._lock:
            return [change for change in self._log if change.revision > revision]

    def _snapshot(self) -> tuple[list[pb.WatchResponse], int]:
        with self._lock:
            head = self._head
            latest: dict[tuple[str, str], pb.Change] = {}
            for change in self._log:
                latest[(change.kind, change.key)] = change
        items = [pb.WatchResponse(snapshot_begin=pb.SnapshotBegin(revision=head))]
        items += [pb.WatchResponse(change=change) for change in latest.values() if not change.deleted]
        items.append(pb.WatchResponse(snapshot_end=pb.SnapshotEnd(revision=head)))
        return items, head

    def _maybe_break(self, sent: int) -> None:
        if self.break_stream_after is not None and sent >= self.break_stream_after:
            raise SyncError("the stream broke (injected)", code="cloud_unreachable")
