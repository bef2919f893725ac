"""Carrier labels drawn in a worker process under a time limit, so no label stalls another's.

PDFium loads a page whole and cannot be interrupted: a 3 kB PDF of forms drawn within forms
keeps it busy for seconds to minutes before a single object can be counted, and a thread running
it can be neither stopped nor timed out. Every PDF label of the agent would wait behind it
(PDFium is not thread-safe: conversions are serialised) and the thread would be held throughout.

`LabelRenderer` runs each conversion in one warm worker process instead (multiprocessing,
`spawn` on every platform: the same on the Linux agent, the Windows agent and the one-file
binary, whose entry point calls `multiprocessing.freeze_support()`). The worker starts at the
first label it is given, so an agent without PDF or PNG labels never starts one, and lives as
long as the agent. Labels go to it one at a time, in the order they came (a queue in front of
it), and each gets `time_limit_s` (default 5 s; a 4-page 4 x 6 in PDF takes tens of ms):

- a label that overruns has the worker killed and a new one started at once; it fails with
  InputError `label_render_timeout` saying what to ask the OMS for, and the labels queued behind
  it go on, each having waited for it at most one time limit;
- a worker that dies under a label (out of memory, a crash in PDFium) fails that label with
  InputError `label_render_failed` and is replaced the same way; one found dead between labels
  is replaced before the next is sent;
- the loop never waits on the worker: the exchange with it is made in a thread (one at a time),
  which waits at most the time limit for the answer.

Memory: on Linux the worker runs under RLIMIT_AS (`DEFAULT_MEMORY_LIMIT`, 1.5 GiB of address
space). Measured: the worker idles at 0.12 GiB (Python, Pillow, PDFium mapped); a PDF page with
a 40 Mpx image (the most the checks let through) peaks at 0.17 GiB, and the largest PNG they let
through (40 Mpx RGBA, made grey over white) at 0.76 GiB. The limit is twice that, so no label
that passes the checks fails on it, while one that gets past them (a decoder bug) cannot take
the PC's memory: past the limit an allocation fails, Python raises MemoryError or PDFium
aborts, and either way the label fails and the agent's own memory is untouched. Windows and
macOS have no RLIMIT_AS: there the pixel bounds of `dockside.labels.carrier_raster` are the only
bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from dockside.errors import DocksideError, InputError

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIME_LIMIT_S",
    "LabelRenderer",
    "RendererUnavailable",
]

log = logging.getLogger(__name__)

DEFAULT_TIME_LIMIT_S = 5.0
DEFAULT_MEMORY_LIMIT = 3 * 2**29  # 1.5 GiB of address space (Linux only): see the module's docstring
_START_TIMEOUT_S = 60.0  # a cold start of the one-file binary on a slow PC imports for seconds
_STOP_TIMEOUT_S = 2.0
_SEND_INSTEAD = "ask the OMS for a flat PDF or for ZPL"


class RendererUnavailable(DocksideError):
    """The label worker process cannot be started (or the agent is stopping): not the label's fault."""

    code = "label_renderer_unavailable"
    http_status = 503


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENT_CHECK_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the agent that started it ends, even by SIGKILL mid-label.

    An idle worker notices on its pipe (EOF), but one inside PDFium (minutes, for a hostile PDF)
    or still importing would live on. Linux: the kernel sends SIGKILL when the parent dies
    (prctl PR_SET_PDEATHSIG; the agent starts workers from one thread that lives as long as the
    renderer, as the signal follows the starting thread). Every POSIX system, Linux included as
    a fallback: a thread exits the process once its parent pid is no longer the agent's (it runs
    while PDFium holds no GIL: pypdfium2 calls release it). Windows: the pipe only.
    """
    if sys.platform == "linux":
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                log.warning("label worker: prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
        except (OSError, AttributeError):  # no libc prctl (an unusual libc): the check below
            pass
    if os.name != "posix":
        return
    if os.getppid() != parent_pid:  # the agent died before the signal was asked for
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(_PARENT_CHECK_S)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-check", daemon=True).start()


def _serve(
    conn: Connection, memory_limit: int | None, preload: tuple[str, ...], parent_pid: int | None = None
) -> None:
    """The worker process: run each `(func, args, kwargs)` received and send back what it gave."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the agent's console is the agent's
    if memory_limit is not None and sys.platform == "linux":
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    for name in preload:
        importlib.import_module(name)
    with contextlib.suppress(OSError):  # the agent stopped, or gave up on this worker
        conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the agent is gone
        if request is None:
            return
        func, args, kwargs = request
        try:
            reply: tuple[Any, ...] = ("ok", func(*args, **kwargs))
        except InputError as exc:
            reply = ("input_error", exc.message, exc.code)
        except MemoryError:
            reply = ("memory",)
        except Exception as exc:
            reply = ("error", type(exc).__name__)
        try:
            conn.send(reply)
        except OSError:
            return


class LabelRenderer:
    """One worker process that converts labels, one at a time, each within `time_limit_s`.

    `memory_limit` is the worker's RLIMIT_AS in bytes on Linux (None: no limit); `preload` names
    modules the worker imports when it starts, so that the first label does not pay for them.
    """

    def __init__(
        self,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
        preload: tuple[str, ...] = (),
        start_timeout_s: float = _START_TIMEOUT_S,
    ) -> None:
        if not time_limit_s > 0:
            raise ValueError(f"a label's time limit must be positive, not {time_limit_s}")
        self.time_limit_s = time_limit_s
        self.memory_limit = memory_limit
        self.preload = preload
        self.start_timeout_s = start_timeout_s
        self._context = multiprocessing.get_context("spawn")
        self._queue: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None  # made on its loop
        self._exchanging = threading.Lock()  # one exchange with the worker at a time, whatever awaits it
        self._worker: _Worker | None = None
        # Workers are started from this one thread, alive as long as the renderer: on Linux a
        # worker gets SIGKILL when the thread that started it ends (see `_die_with_parent`).
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-worker-start")
        self._closed = False
        self.replaced = 0  # workers killed or found dead, and replaced

    @property
    def pid(self) -> int | None:
        """The worker's process id, None before the first label and after `close`."""
        worker = self._worker
        return worker.process.pid if worker is not None else None

    async def render(self, what: str, func: Callable[..., bytes], *args: Any, **kwargs: Any) -> bytes:
        """`func(*args, **kwargs)` run in the worker; `what` names the label in errors ("parcel 2's
        carrier label (PDF)"). `func` and its arguments are pickled: a module-level function.

        InputError as `func` raised it; `label_render_timeout` past the time limit,
        `label_render_failed` when the worker died under it. RendererUnavailable when no worker
        can be started or the renderer is closed.
        """
        if self._closed:
            raise RendererUnavailable(f"{what} was not drawn: the agent is stopping")
        loop = asyncio.get_running_loop()
        if self._queue is None or self._queue[0] is not loop:
            self._queue = (loop, asyncio.Lock())  # FIFO: labels are drawn in the order they came
        async with self._queue[1]:
            # If this await is cancelled the thread still finishes its exchange (at most the time
            # limit), and the next label's thread waits for it on `_exchanging`.
            reply = await asyncio.to_thread(self._exchange, what, (func, args, kwargs))
        kind = reply[0]
        if kind == "ok":
            data: bytes = reply[1]
            return data
        if kind == "input_error":
            raise InputError(reply[1], code=reply[2])
        if kind == "timeout":
            raise InputError(
                f"{what} took longer than {self.time_limit_s:g} s to draw and was stopped (a PDF "
                f"built of forms within forms can take minutes): {_SEND_INSTEAD}",
                code="label_render_timeout",
            )
        if kind == "died":
            raise InputError(
                f"{what} could not be drawn: the process drawing it stopped ({reply[1]}), most likely "
                f"out of memory on this label: {_SEND_INSTEAD}",
                code="label_render_failed",
            )
        if kind == "memory":
            raise InputError(
                f"{what} could not be drawn: it needs more memory than a label may use: {_SEND_INSTEAD}",
                code="label_render_failed",
            )
        raise InputError(
            f"{what} could not be drawn: rendering it failed ({reply[1]}); ask the OMS to send the "
            "label again",
            code="carrier_label_unprintable",
        )

    async def warm(self) -> None:
        """Start the worker now, if none runs, without waiting for its imports (a second or more):
        for when a PDF or PNG label is known to be coming, so that its pack does not wait for them."""
        if not self._closed and self._worker is None:
            await asyncio.to_thread(self._warm)

    async def close(self) -> None:
        """Stop the worker (after the label it is drawing, at most the time limit); idempotent."""
        self._closed = True
        await asyncio.to_thread(self._stop)

    # -- in a thread, one at a time ------------------------------------------------------------

    def _exchange(self, what: str, request: tuple[Any, ...]) -> tuple[Any, ...]:
        with self._exchanging:
            worker = self._ready_worker(what)
            try:
                worker.conn.send(request)
            except (OSError, ValueError):
                return ("died", self._bury(worker, "it could not be sent the label"))
            if not worker.conn.poll(self.time_limit_s):
                self._bury(worker, f"{what} overran {self.time_limit_s:g} s")
                return ("timeout",)
            try:
                reply: tuple[Any, ...] = worker.conn.recv()
            except (EOFError, OSError):
                return ("died", self._bury(worker, f"it died drawing {what}"))
            return reply

    def _warm(self) -> None:
        with self._exchanging:
            if self._worker is None and not self._closed:
                with contextlib.suppress(RendererUnavailable):
                    self._start()

    def _ready_worker(self, what: str) -> _Worker:
        """The worker, started (or replaced, if it died idle) and past its imports."""
        worker = self._worker
        if worker is not None and not worker.process.is_alive():
            self._bury(worker, "it was found dead between labels")  # and started its replacement
            worker = self._worker
        if worker is None:
            if self._closed:
                raise RendererUnavailable(f"{what} was not drawn: the agent is stopping")
            worker = self._start()
        if not worker.ready:
            try:
                started = worker.conn.poll(self.start_timeout_s)
                hello = worker.conn.recv() if started else None
            except (EOFError, OSError):
                hello = None
            if not (isinstance(hello, tuple) and hello[0] == "ready"):
                exitcode = self._bury(worker, "it did not start", replace=False)
                raise RendererUnavailable(
                    f"{what} was not drawn: the label worker process did not start ({exitcode}); "
                    "check the agent's log and that the PC has memory free, then pack again"
                )
            worker.ready = True
        return worker

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve,
            args=(theirs, self.memory_limit, self.preload, os.getpid()),
            name="dockside-label-renderer",
            daemon=True,  # never outlives the agent, even one that did not stop cleanly
        )
        try:
            self._starter.submit(process.start).result()
        except OSError as exc:
            ours.close()
            raise RendererUnavailable(
                f"the label worker process cannot be started ({exc}): check that the PC has memory "
                "and processes free, then pack again"
            ) from exc
        finally:
            theirs.close()
        self._worker = _Worker(process, ours)
        return self._worker

    def _bury(self, worker: _Worker, why: str, *, replace: bool = True) -> str:
        """Kill `worker`, start its replacement (unless closed or told not to); its exit, told."""
        worker.process.kill()
        worker.process.join(_STOP_TIMEOUT_S)
        worker.conn.close()
        exitcode = worker.process.exitcode
        told = (
            f"killed by signal {-exitcode}"
            if exitcode is not None and exitcode < 0
            else f"exit code {exitcode}"
        )
        log.warning("label worker %s replaced: %s (%s)", worker.process.pid, why, told)
        self._worker = None
        self.replaced += 1
        if replace and not self._closed:
            # Started now, not at the next label: its imports overlap whatever comes next.
            with contextlib.suppress(RendererUnavailable):
                self._start()
        return told

    def _stop(self) -> None:
        with self._exchanging:
            worker, self._worker = self._worker, None
            if worker is None:
                self._starter.shutdown(wait=False)  # closed: no worker is started again
                return
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
            worker.process.join(_STOP_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_STOP_TIMEOUT_S)
            worker.conn.close()
            # Only now: the starting thread's end would SIGKILL a worker still finishing (Linux).
            self._starter.shutdown(wait=False)
