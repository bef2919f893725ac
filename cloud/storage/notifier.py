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

__all__ = ["AgentRevocations", "LocalRevisionNotifier", "RevisionNotifier", "StreamStop", "settle"]


class StreamStop:
    """Ends one Watch stream, at once even while it waits; set on the loop that serves the stream.

    A waiting stream puts the future it awaits in `waiting`, and `set` settles it.
    """

    __slots__ = ("_set", "waiting")

    def __init__(self) -> None:
        self._set = False
        self.waiting: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self.waiting is not None:
            settle(self.waiting)


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


_Waiting = dict[asyncio.AbstractEventLoop, set["asyncio.Future[None]"]]


class LocalRevisionNotifier:
    """The in-process notifier: one future per waiter, all released by one call per event loop.

    A wait costs one future and one timer, no task (as asyncio.wait_for would make).
    """

    def __init__(self, revision: int = 0) -> None:
        self._lock = threading.Lock()
        self._latest = revision
        self._closed = False
        self._waiting: _Waiting = {}

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
            waiting, self._waiting = self._waiting, {}
        _release(waiting)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, {}
        _release(waiting)

    async def wait_past(self, revision: int, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                return False
            if self._latest > revision:
                return True
            woken: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(loop, set()).add(woken)
        timer = loop.call_later(seconds, settle, woken)
        try:
            await woken
        finally:
            timer.cancel()
            with self._lock:
                # Gone already if an advance released it; a timed-out wait must not pile up.
                self._waiting.get(loop, set()).discard(woken)
        return not self._closed and self._latest > revision


def settle(future: asyncio.Future[None]) -> None:
    """Resolve a waiter's future unless it is already done (woken, timed out or cancelled)."""
    if not future.done():
        future.set_result(None)


def _settle_all(futures: set[asyncio.Future[None]]) -> None:
    for future in futures:
        settle(future)


def _release(waiting: _Waiting) -> None:
    for loop, futures in waiting.items():
        # A loop that has already stopped has no waiters left to wake.
        if futures and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, futures)


class AgentRevocations:
    """Ends a revoked agent's open Watch streams at once: each stream holds a StreamStop set on revoke.

    `revoke` is safe from any thread (the admin API's worker, a LISTEN thread); a stream's stop
    belongs to the loop that serves it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, set[tuple[asyncio.AbstractEventLoop, StreamStop]]] = {}

    @contextlib.contextmanager
    def watching(self, agent_id: str) -> Iterator[StreamStop]:
        """A stop that is set if `agent_id` is revoked while the `with` block runs."""
        entry = (asyncio.get_running_loop(), StreamStop())
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
        """Set the stop of every open stream of `agent_id`."""
        with self._lock:
            waiting = list(self._streams.get(agent_id, ()))
        for loop, stop in waiting:
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(stop.set)
