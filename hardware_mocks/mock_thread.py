"""The background thread and event loop each in-process mock runs on.

A mock started from a test or a benchmark must not borrow the caller's event loop (the caller may
have none, or may block it): it gets its own loop in a daemon thread, and the caller talks to it
through thread-safe calls that wait with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["MockThread"]

T = TypeVar("T")


class MockThread:
    """An event loop in a daemon thread: start it with a coroutine, call into it, stop it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the loop is up."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, startup: Coroutine[Any, Any, None], timeout_s: float = 30.0) -> None:
        """Run `startup` on a new loop in a new thread; return when it finished, raise what it raised."""
        if self.running:
            startup.close()
            raise RuntimeError(f"{self.name} is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self.loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(startup)
            except BaseException as exc:  # handed to the starting thread, which raises it
                failure.append(exc)
                ready.set()
                _close(loop)
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                _close(loop)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError(f"{self.name} did not start within {timeout_s} s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        """Run a coroutine on the mock's loop from another thread and return its result."""
        if self.loop is None or not self.running:
            coroutine.close()
            raise RuntimeError(f"{self.name} is not running: start it first")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(f"{self.name}: call() from the mock's own thread would deadlock")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self, shutdown: Coroutine[Any, Any, None], timeout_s: float = 30.0) -> None:
        """Run `shutdown` on the loop, then stop the loop and join the thread. Safe to call twice."""
        if self.loop is None or self._thread is None or not self.running:
            shutdown.close()
            return
        loop = self.loop
        try:
            asyncio.run_coroutine_threadsafe(shutdown, loop).result(timeout_s)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout_s)
            self._thread = None


def _close(loop: asyncio.AbstractEventLoop) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
