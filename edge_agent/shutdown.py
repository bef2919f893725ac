"""Stopping the agent in bounded steps: a step that hangs is named in the log and left behind.

The agent's state is safe at any instant (the outbox and the jobs table survive kill -9), so a
shutdown step that does not finish (a device thread stuck in a driver, a gRPC call that ignores
its cancellation, a worker process that does not start) must not keep the process alive: a
stop for an update would never install it, and a service manager would have to kill it. Each
step runs with a time limit; one that overruns is logged with what it was and the agent goes
on without it.

Blocking work runs in a daemon thread of its own, not the loop's default executor: the
interpreter joins executor threads at exit, so a stuck one would hang the exit instead.
`BoundedExecutor` is the loop's default executor in `dockside-agent run` for the same reason:
when its threads do not finish within a limit at shutdown, their stacks are logged and
`threads_abandoned()` tells the command to leave with `os._exit` (the interpreter's own exit
would join them forever).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["STEP_LIMIT_S", "BoundedExecutor", "bounded_step", "in_daemon_thread", "threads_abandoned"]

log = logging.getLogger(__name__)

STEP_LIMIT_S = 10.0  # one shutdown step; the longest normal one (a label worker's stop) takes ~2 s
EXECUTOR_LIMIT_S = 10.0

T = TypeVar("T")

_abandoned: list[str] = []  # names of executor threads left running at shutdown


def threads_abandoned() -> list[str]:
    """The executor threads a shutdown left running (empty when every one finished)."""
    return list(_abandoned)


async def bounded_step(what: str, work: Awaitable[Any], limit_s: float | None = None) -> bool:
    """Run one shutdown step for at most `limit_s` (STEP_LIMIT_S); True when it finished (an
    error it raised is logged).

    `asyncio.wait`, not `wait_for`: on a timeout wait_for waits for the cancelled step to end,
    which is exactly what a step that swallows its cancellation never does.
    """
    limit_s = STEP_LIMIT_S if limit_s is None else limit_s
    started = time.monotonic()
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=limit_s)
    if not done:
        task.cancel()
        log.error(
            "stopping: %s did not finish within %g s; the agent stops without waiting for it", what, limit_s
        )
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("stopping: %s failed: %r", what, task.exception())
    took = time.monotonic() - started
    log.log(logging.INFO if took >= 1 else logging.DEBUG, "stopping: %s took %.3f s", what, took)
    return True


def in_daemon_thread(what: str, func: Callable[[], T]) -> asyncio.Future[T]:
    """`func()` in a daemon thread of its own: a result the loop can await, a thread nobody joins."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = func()
        except BaseException as exc:  # handed to the awaiting task, as to_thread would
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name=f"stop: {what}", daemon=True).start()
    return future


class BoundedExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor whose `shutdown(wait=True)` waits at most `limit_s` for its threads.

    asyncio.run shuts the default executor down and waits for every `to_thread` still running;
    a thread stuck in a device call would hang the process forever. Past the limit the stuck
    threads' stacks go to the log (what hung, for the next person) and `threads_abandoned`
    names them.
    """

    def __init__(self, *args: Any, limit_s: float = EXECUTOR_LIMIT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_s = limit_s

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        if not wait:
            return
        deadline = time.monotonic() + self.limit_s
        for worker in list(self._threads):
            worker.join(max(0.0, deadline - time.monotonic()))
        stuck = [worker for worker in self._threads if worker.is_alive()]
        if not stuck:
            return
        frames = sys._current_frames()
        for worker in stuck:
            frame = frames.get(worker.ident or -1)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
            log.error(
                "stopping: thread %s still runs after %g s; exiting without it. It was in:\n%s",
                worker.name,
                self.limit_s,
                where,
            )
            _abandoned.append(worker.name)
