"""How Watch streams learn that the change log has grown, without polling the database.

A write calls `advanced(revision)` after it commits, from whatever thread it ran in; a Watch
stream awaits `wait_past(revision)`. The in-process notifier serves one process (SQLite); a
PostgreSQL LISTEN/NOTIFY notifier implements the same protocol so any replica can wake its own
watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol

__all__ = ["AgentRevocations", "LocalRevisionNotifier", "RevisionNotifier"]


class RevisionNotifier(Protocol):
    """Tells waiting Watch streams that a revision was committed."""

    @property
    def latest(self) -> int:
        """The highest committed revision this notifier has heard of."""
        ...

    @property
    def closed(self) -> bool:
        """True once the server is shutting down: waiters stop waiting."""
        ...

    def advanced(self, revision: int) -> None:
        """Record that `revision` is committed and wake the waiters; safe from any thread."""
        ...

    async def wait_past(self, revision: int, seconds: float) -> bool:
        """Wait up to `seconds` for a revision above `revision`; False on timeout or close."""
        ...

    def close(self) -> None:
        """Wake every waiter for good: the server is shutting down."""
        ...


class LocalRevisionNotifier:
    """The in-process notifier: one asyncio.Event per event loop, replaced at each advance."""

    def __init__(self, revision: int = 0) -> None:
        self._lock = threading.Lock()
        self._latest = revision
        self._closed = False
        self._events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    @property
    def latest(self) -> int:
        return self._latest

    @property
    def closed(self) -> bool:
        return self._closed

    def advanced(self, revision: int) -> None:
        with self._lock:
            if revision <= self._latest:
                return
            self._latest = revision
            waiting = list(self._events.items())
            self._events.clear()
        self._wake(waiting)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting = list(self._events.items())
            self._events.clear()
        self._wake(waiting)

    async def wait_past(self, revision: int, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                return False
            if self._latest > revision:
                return True
            event = self._events.get(loop)
            if event is None:
                event = self._events[loop] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return not self._closed and self._latest > revision

    @staticmethod
    def _wake(waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
        for loop, event in waiting:
            # A loop that has already stopped has no waiters left to wake.
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(event.set)


class AgentRevocations:
    """Ends a revoked agent's open Watch streams at once: each stream holds an event set on revoke.

    `revoke` is safe from any thread (the admin API's worker, a LISTEN thread); a stream's event
    belongs to the loop that serves it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def watching(self, agent_id: str) -> Iterator[asyncio.Event]:
        """An event that is set if `agent_id` is revoked while the `with` block runs."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._streams.setdefault(agent_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                streams = self._streams.get(agent_id)
                if streams is not None:
                    streams.discard(entry)
                    if not streams:
                        del self._streams[agent_id]

    def revoke(self, agent_id: str) -> None:
        """Set the event of every open stream of `agent_id`."""
        with self._lock:
            waiting = list(self._streams.get(agent_id, ()))
        LocalRevisionNotifier._wake(waiting)
