"""PrinterLane: one printer's kept-open driver, its worker thread and what it last said.

Every printer gets a lane: one persistent driver object and one worker thread, so the pack path
hands it bytes without opening a connection and labels leave in the order their jobs were
recorded. Nothing that can wait ever runs on the event loop: connecting, identifying, status
queries and any send that cannot complete at once run in the lane's thread, and the loop
awaits their future, so a printer that vanishes holds up only its own lane (its packs come
back `held` or `failed` with what to do), never the station page or the other stations.

A label for a printer whose driver can take it without waiting (`InlineSender`: ZPL over an
open TCP connection with room in its buffer) is handed over on the loop itself: a non-blocking
`send` of a couple of kilobytes (microseconds), where the hop to a thread and back costs a
quarter of a millisecond on a busy two-core PC, half the pack path's budget. Whatever would
wait (no connection yet, a closed one, a full buffer, the rest of a label the socket took in
part) goes to the lane thread. A status poll never stands in a label's way: its request and
the label are written one after the other on the same connection, and the reply is read in
the lane thread while the label goes out.

Every status answer also settles the labels waiting for confirmation (`sent`, see
`edge_agent.devices.print_confirmation`): `poll` returns what it confirmed, held or gave up on.
A driver that cannot read its printer (`can_confirm` False: a spool file) confirms nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from dockside.errors import DocksideError, PrinterError, PrinterUnreachable

from .config import PrinterConfig
from .print_confirmation import Confirmation, SentLedger
from .printer import PRINTER_FAULTS, InlineSender, Printer

__all__ = ["PrinterLane", "PrinterLaneStatus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrinterLaneStatus:
    """One printer as the station page and `GET /api/v1/status` show it (`to_json`, keys in order)."""

    id: str
    hardware_id: str
    role: str
    language: str
    model: str
    address: str
    state: str
    message: str
    faults: list[str]
    held_jobs: int
    status_checks: int
    inline_sends: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PrinterLane:
    """One printer: its driver, its worker thread, its queue order and what it last said."""

    def __init__(self, config: PrinterConfig, printer: Printer, *, confirm_timeout_s: float = 30.0) -> None:
        self.config = config
        self.printer = printer
        self.hardware_id = config.id
        self.state = "unknown"
        self.message = f"printer {config.id} has not been checked yet"
        self.checked_at: float | None = None
        self.faults: frozenset[str] = frozenset()
        # Jobs recorded `held` for this printer and not sent yet; the packer keeps the count so
        # the pack path knows without a query whether a new label must queue behind them.
        self.held = 0
        # Jobs sent since the printer last answered a status request on the same connection.
        # An answer proves it took them (it reads its connection in order); a connection the
        # printer closed first puts them in doubt (see `check`).
        self.unconfirmed: deque[str] = deque(maxlen=10_000)
        self._drops_seen = 0
        # Jobs sent and not yet confirmed printed by the printer, oldest first.
        self.sent = SentLedger(confirm_timeout_s)
        # Held by a pack from recording its job to committing the result, so labels on one
        # printer go out in the order their jobs were written.
        self.lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"printer-{config.id}")
        self._closed = False
        self._inline = printer if isinstance(printer, InlineSender) else None
        # Sends still running in the lane thread (one whose pack was cancelled may outlive it):
        # a label handed over on the loop must not overtake them.
        self._lane_sends = 0
        self.inline_sends = 0  # labels handed over on the loop (for tests and the bench)
        self.checks = 0  # status checks answered or failed (for the status page and the bench)

    def _submit(self, call: Callable[[], Any]) -> Future[Any]:
        return self._thread.submit(call)

    async def _in_lane(self, call: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self._submit(call))

    async def _send_in_lane(self, call: Callable[[], None]) -> None:
        self._lane_sends += 1
        future = self._submit(call)

        def done(_future: Future[Any]) -> None:
            self._lane_sends -= 1

        # Counted down on the loop, where it is read (the future may finish after a cancelled pack).
        loop = asyncio.get_running_loop()

        def done_in_lane(finished: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop already closed (agent stopping)
                loop.call_soon_threadsafe(done, finished)

        future.add_done_callback(done_in_lane)
        await asyncio.wrap_future(future)

    def connect_in_background(self) -> None:
        """Open the connection and learn the hardware id ahead of the first label."""
        self._submit(self._connect)

    @property
    def name(self) -> str:
        """How a packer knows the printer: its model and id ("ZD421 S1-label")."""
        model = self.config.model
        return f"{model} {self.config.id}" if model and model not in self.config.id else self.config.id

    @property
    def faulted(self) -> bool:
        """The last check or send said this printer cannot print now."""
        return self.state in ("fault", "offline")

    def trouble(self, station: str) -> str:
        """What stops this printer, told to a packer at `station`.

        For example "ZD421 S1-label at S1 is out of labels: load labels".
        """
        faults = self.faults or frozenset({"offline" if self.state == "offline" else "no_answer"})
        wording = [
            PRINTER_FAULTS[code].split(", the waiting")[0] for code in PRINTER_FAULTS if code in faults
        ]
        wording += [f"reports {code}" for code in sorted(faults - PRINTER_FAULTS.keys())]
        return f"{self.name} at {station} {'; '.join(wording)}"

    def held_message(self, station: str) -> str:
        """What a packer at `station` reads when a label waits for this printer."""
        return f"{self.trouble(station)}, then the label prints by itself"

    def _connect(self) -> None:
        try:
            self.printer.open()
            try:
                self.hardware_id = self.printer.identify() or self.config.id
            except PrinterError as exc:
                if exc.code != "printer_unidentified":
                    raise
                # It took the connection and only kept quiet about its serial number (many
                # receipt printers have no GS I): reachable, known by its configured id. Marked
                # offline, its labels would wait for the next status poll.
                log.warning("%s", exc.message)
                self.hardware_id = self.config.id
            self._mark("ready", f"printer {self.config.id} is connected")
        except DocksideError as exc:
            self._mark("offline", exc.message, {"offline"})
        except Exception as exc:  # a driver bug must not kill the lane
            log.exception("opening printer %s failed", self.config.id)
            self._mark("offline", f"printer {self.config.id} could not be opened: {exc!r}", {"offline"})

    async def send(self, data: bytes) -> None:
        """Hand the label to the printer; PrinterError if it could not take every byte.

        On the loop when the driver can take it at once, else in the lane thread (see the
        module docstring); the loop never waits on the printer either way.
        """
        inline = self._inline
        try:
            taken = inline.send_nowait(data) if inline is not None and not self._lane_sends else None
            if taken is None:
                await self._send_in_lane(lambda: self.printer.send(data))
            elif taken < len(data):
                assert inline is not None
                await self._send_in_lane(inline.finish_send)
            else:
                self.inline_sends += 1
        except PrinterUnreachable as exc:
            self._mark("offline", exc.message, {"offline"})
            raise
        except PrinterError as exc:
            self._mark("fault", exc.message, {"no_answer"})
            raise
        if self.state != "ready":
            self._mark("ready", f"printer {self.config.id} took the last label")

    @property
    def can_confirm(self) -> bool:
        """Whether the printer can say what it printed (a spool file or a write-only link cannot)."""
        return bool(getattr(self.printer, "can_confirm", True))

    async def check(self) -> list[str]:
        """Ask the printer how it is (in its lane thread; labels go out meanwhile).

        Returns the jobs whose labels may be lost: sent since its last answer, after which the
        printer closed the connection (a drop mid-label, a restart, a power cut).
        """
        lost, _confirmation = await self.poll()
        return lost

    async def poll(self) -> tuple[list[str], Confirmation]:
        """`check`, and what the answer confirmed of the labels sent before it (see the module
        docstring); the lost jobs are no longer awaited."""
        pending = list(self.unconfirmed)
        mark = self.sent.mark()
        try:
            status = await self._in_lane(self.printer.status)
        except DocksideError as exc:
            self._mark("offline", exc.message, {"offline"})
            lost = self._settle(pending, answered=False)
            self.sent.forget(lost)
            return lost, self.sent.answer(mark, None, time.monotonic(), can_confirm=self.can_confirm)
        finally:
            self.checks += 1
        lost = self._settle(pending, answered=not {"offline", "no_answer"} & status.faults)
        self._mark(status.state, status.message, status.faults)
        self.sent.forget(lost)
        confirmation = self.sent.answer(mark, status, time.monotonic(), can_confirm=self.can_confirm)
        return lost, confirmation

    def _settle(self, pending: list[str], *, answered: bool) -> list[str]:
        drops = int(getattr(self.printer, "connection_drops", 0))
        dropped, self._drops_seen = drops != self._drops_seen, drops
        if dropped:
            # Every label sent before the drop was seen may be lost, one handed over while this
            # check waited for its answer included: a person looks (it is never resent).
            lost = list(self.unconfirmed)
            self.unconfirmed.clear()
            return lost
        if answered and pending:
            done = set(pending)
            self.unconfirmed = deque((job for job in self.unconfirmed if job not in done), maxlen=10_000)
        return []

    def _mark(self, state: str, message: str, faults: frozenset[str] | set[str] = frozenset()) -> None:
        self.state, self.message, self.checked_at = state, message, time.time()
        self.faults = frozenset(faults)

    def describe(self) -> PrinterLaneStatus:
        """What the station page and the status API show about this printer now."""
        return PrinterLaneStatus(
            id=self.config.id,
            hardware_id=self.hardware_id,
            role=self.config.role,
            language=self.config.language,
            model=self.config.model,
            address=self.config.address,
            state=self.state,
            message=self.message,
            faults=sorted(self.faults),
            held_jobs=self.held,
            status_checks=self.checks,
            inline_sends=self.inline_sends,
        )

    def close(self) -> None:
        """Finish queued work, drop the connection and end the thread (blocking)."""
        if self._closed:
            return
        self._closed = True
        self._thread.submit(self.printer.close)
        self._thread.shutdown(wait=True)
