"""A software label printer on raw TCP (port 9100 style) with a control API and injectable faults.

`MockPrinter` runs in its own thread with its own event loop, so a test, a benchmark or the demo
can start it in-process and talk to it over real sockets:

    with MockPrinter(port=0, control_port=0) as printer:
        ...send ZPL to ("127.0.0.1", printer.port)...
        printer.wait_for_labels(1)

It behaves like a networked Zebra (ZPL) or Epson (ESC/POS) printer: many long-lived connections,
jobs parsed incrementally across reads, status queries answered at once, and faults that hold
jobs in the receive buffer (paper out, head open, paused, ribbon out), stop reading (buffer
full), refuse connections (offline), answer nothing (silent), print slowly (slow), cut the
connection in the middle of the next label (drop) or stop reading in the middle of the next label
with the connection left open (stall). Every printed job is recorded in order. How soon it
confirms a label (prints it and stops counting it among the formats waiting) is its confirm
mode: at once, after a delay, or a paper-out fault right after it took the label in.

On loopback the kernel gives a sender megabytes of socket buffer (a 64 KB segment size makes it
size the buffer for a fast link), so a printer that stops reading would hold up a sender only
after megabytes. `receive_buffer_bytes` and `mss_bytes` give the printer's port the TCP shape of
a small device on Ethernet: a receive buffer of a few kilobytes and 1460-byte segments, so the
sender's buffer stays around a hundred kilobytes and a stalled printer holds up a batch of labels
as a real one does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from hardware_mocks.control_http import ControlledMock
from hardware_mocks.label_store import LabelStore
from hardware_mocks.printer_control import build_printer_app
from hardware_mocks.printer_events import (
    Blocked,
    JobComplete,
    JobStarted,
    PrinterCommand,
    PrinterEvent,
    PrinterQuery,
)
from hardware_mocks.printer_faults import CONFIRM_MODES, FAULTS, HOLDING_FAULTS
from hardware_mocks.printer_languages import LANGUAGES, PrinterLanguage, PrinterState, PrinterStream

__all__ = ["CONFIRM_MODES", "FAULTS", "HOLDING_FAULTS", "MockPrinter", "PrintedLabel"]

DEFAULT_SLOW_DELAY_S = 0.3
DEFAULT_CONFIRM_DELAY_S = 1.0
DEFAULT_MODELS = {"zpl": "ZD421", "escpos": "TM-T88VI"}
# Linux doubles SO_RCVBUF and never goes below about 2 KB; above 64 MiB is no printer.
RECEIVE_BUFFER_RANGE = (1024, 64 * 1024 * 1024)
# 536 is the smallest segment every TCP must take; 9000 is an Ethernet jumbo frame.
MSS_RANGE = (536, 9000)


def _iso(timestamp: float) -> str:
    return (
        dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


@dataclass(slots=True)
class PrintedLabel:
    """One printed job as the printer received it."""

    index: int
    received_at: float
    printed_at: float
    raw: bytes
    fields: list[str]
    connection: int

    def as_json(self) -> dict[str, Any]:
        """The control API shape of this label."""
        return {
            "index": self.index,
            "received_at": _iso(self.received_at),
            "received_ts": self.received_at,
            "printed_at": _iso(self.printed_at),
            "data": self.raw.decode("utf-8", "replace"),
            "fields": list(self.fields),
            "connection": self.connection,
            "bytes": len(self.raw),
        }


@dataclass(slots=True)
class _Job:
    raw: bytes
    received_at: float
    connection: int


class _Connection(asyncio.Protocol):
    """One host connection: feeds its bytes through the language's parser, in order."""

    def __init__(self, printer: MockPrinter, number: int) -> None:
        self.printer = printer
        self.number = number
        self.stream: PrinterStream = printer.language.new_stream()
        self.transport: asyncio.Transport | None = None
        self.reading_paused = False
        # Stopped reading in the middle of a label by the `stall` fault (see MockPrinter._stall).
        self.stalled = False
        self.closed = False
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.printer._connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self.printer.bytes_received += len(data)
        self.stream.feed(data)
        self.process()

    def eof_received(self) -> bool:
        # Keep the socket open for the answers to what is still buffered; process() closes it.
        self.eof = True
        self.process()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        self.printer._connection_lost(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def process(self) -> None:
        """Act on every complete event in the buffer, or stop where the printer refuses jobs."""
        printer = self.printer
        while not (self.transport is not None and self.transport.is_closing()):
            if self.stalled:
                return  # the rest waits until the stall is cleared (see unstall)
            event = self.stream.next_event(jobs_allowed=not printer.receive_blocked)
            if event is None:
                break
            if isinstance(event, Blocked):
                self._pause()
                return
            printer._handle(self, event)
        if self.eof and self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _pause(self) -> None:
        if self.transport is not None and not self.reading_paused:
            self.transport.pause_reading()
        self.reading_paused = True
        self.printer._blocked.add(self)

    def resume(self) -> None:
        """Read again after the printer accepted jobs again."""
        if self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.reading_paused = False
        self.process()
        if self.closed and not self.reading_paused:
            self.printer._finish_closed(self)

    def unstall(self) -> None:
        """Read again after the `stall` fault was cleared: the rest of the label, then what follows."""
        self.stalled = False
        if not self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.process()
        if self.closed and not self.reading_paused and not self.stalled:
            self.printer._finish_closed(self)


class MockPrinter(ControlledMock):
    """A ZPL or ESC/POS network printer in a background thread, with an HTTP control API.

    Parameters: `host`/`port` for raw TCP (port 0 picks a free port), `control_host`/`control_port`
    for the control API, `language` ("zpl" or "escpos"), `serial` and `model` (what the printer
    reports about itself; the model defaults to ZD421, or TM-T88VI for ESC/POS), `store` (a folder
    receiving one file per printed job), `advertise` (announce over zeroconf), `buffer_limit_bytes`
    (how much unprinted data the receive buffer holds before the printer stops reading),
    `receive_buffer_bytes` (SO_RCVBUF of the print port, so of every connection: the TCP window
    it offers) and `mss_bytes` (the largest TCP segment it says it takes); both default to the
    operating system's (see the module docstring for why a test sets them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9100,
        control_port: int = 9180,
        language: str = "zpl",
        serial: str | None = None,
        model: str | None = None,
        store: str | Path | None = None,
        advertise: bool = False,
        control_host: str = "127.0.0.1",
        buffer_limit_bytes: int = 4 * 1024 * 1024,
        firmware: str = "V84.20.18Z",
        advertise_interfaces: list[str] | None = None,
        receive_buffer_bytes: int | None = None,
        mss_bytes: int | None = None,
    ) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown printer language {language!r}: use one of {sorted(LANGUAGES)}")
        _check_range("receive_buffer_bytes", receive_buffer_bytes, RECEIVE_BUFFER_RANGE)
        _check_range("mss_bytes", mss_bytes, MSS_RANGE)
        super().__init__(f"mock-printer-{port}", control_host, control_port)
        self.receive_buffer_bytes = receive_buffer_bytes
        self.mss_bytes = mss_bytes
        self.host = host
        self.requested_port = port
        self.language: PrinterLanguage = LANGUAGES[language]
        self._serial = serial
        self.model = model or DEFAULT_MODELS[language]
        self.firmware = firmware
        self.store = Path(store) if store is not None else None
        self.advertise = advertise
        self.advertise_interfaces = advertise_interfaces
        self.buffer_limit_bytes = buffer_limit_bytes
        self.port = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._printed = threading.Condition(self._lock)
        self._labels: list[PrintedLabel] = []
        self._next_index = 1
        self._printed_total = 0
        self._waiting: deque[_Job] = deque()
        self._waiting_bytes = 0
        self._fault = "none"
        self._slow_delay_s = DEFAULT_SLOW_DELAY_S
        self._slow_timer: asyncio.TimerHandle | None = None
        self._confirm_mode = "at_once"
        self._confirm_delay_s = DEFAULT_CONFIRM_DELAY_S
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._connections: set[_Connection] = set()
        self._blocked: set[_Connection] = set()
        self._stalled: set[_Connection] = set()
        self._connection_count = 0
        self._drops: list[dict[str, Any]] = []
        self._discarded_partial = 0
        self._cancelled = 0
        self._settings: dict[str, str] = {}
        self._server: asyncio.Server | None = None
        self._advertiser: Any = None
        self._store: LabelStore | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    async def _open_device(self) -> None:
        self._server = await self._listen(self.requested_port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.store is not None:
            self._store = LabelStore(self.store, self.language.file_suffix)
        if self.advertise:
            # Loaded only here: zeroconf is heavy, and most printers never announce themselves.
            from hardware_mocks.advertising import PrinterAdvertiser

            self._advertiser = PrinterAdvertiser(self, self.advertise_interfaces)
            await self._advertiser.start()

    async def _close_device(self) -> None:
        if self._advertiser is not None:
            await self._advertiser.stop()
        if self._slow_timer is not None:
            self._slow_timer.cancel()
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._store is not None:
            self._store.close()

    def _control_app(self) -> FastAPI:
        return build_printer_app(self)

    async def _listen(self, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: self._new_connection(),
            self.host,
            port,
            reuse_address=True,
            backlog=128,
            start_serving=False,
        )
        # Set before listen(): accepted connections inherit both, and the window and segment
        # size they offer are settled in the handshake.
        for sock in server.sockets:
            if self.receive_buffer_bytes is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer_bytes)
            if self.mss_bytes is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, self.mss_bytes)
        await server.start_serving()
        return server

    def _new_connection(self) -> _Connection:
        self._connection_count += 1
        return _Connection(self, self._connection_count)

    # ----- identity --------------------------------------------------------------------------

    @property
    def serial(self) -> str:
        """The serial number the printer reports (`device.unique_id`)."""
        return self._serial or f"MOCK{self.port:05d}"

    @property
    def fault(self) -> str:
        """The fault in force now."""
        return self._fault

    # ----- thread-safe API for tests and benches ---------------------------------------------

    def labels(self, since: int = 0) -> list[dict[str, Any]]:
        """Printed labels in the control API shape, those with index > since."""
        with self._lock:
            return [label.as_json() for label in self._labels if label.index > since]

    def clear_labels(self) -> int:
        """Forget the printed labels (indexes keep counting); returns how many were forgotten."""
        with self._lock:
            count = len(self._labels)
            self._labels.clear()
            return count

    def wait_for_labels(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least `count` labels are recorded; TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._printed:
            while len(self._labels) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._labels)} labels printed, waited for {count}")
                self._printed.wait(remaining)
            return [label.as_json() for label in self._labels]

    def flush_store(self, timeout_s: float = 30.0) -> bool:
        """Wait until every printed label is written to `store` (files are written in the background)."""
        return self._store.flush(timeout_s) if self._store is not None else True

    def set_fault(self, fault: str, delay_s: float | None = None) -> dict[str, Any]:
        """Inject a fault (or "none") from any thread; returns the status after it took effect."""
        return self._thread.call(self.apply_fault(fault, delay_s))

    def set_confirm(self, mode: str, delay_s: float | None = None) -> dict[str, Any]:
        """Set how it confirms labels (see `printer_faults`) from any thread; the status after."""
        return self._thread.call(self.apply_confirm(mode, delay_s))

    def status(self) -> dict[str, Any]:
        """The printer's state as `GET /status` reports it, from any thread."""
        return self._thread.call(self._status_now())

    async def _status_now(self) -> dict[str, Any]:
        return self.status_snapshot()

    # ----- loop-side state (the control API runs on the same loop) ----------------------------

    @property
    def receive_blocked(self) -> bool:
        """Whether the receive buffer refuses job bytes: buffer_full, or too much held unprinted."""
        return self._fault == "buffer_full" or self._waiting_bytes >= self.buffer_limit_bytes

    def status_snapshot(self) -> dict[str, Any]:
        """The printer's state (call on the printer's loop)."""
        with self._lock:
            recorded = len(self._labels)
            printed = self._printed_total
        return {
            "fault": self._fault,
            "slow_delay_s": self._slow_delay_s,
            "confirm_mode": self._confirm_mode,
            "confirm_delay_s": self._confirm_delay_s,
            "language": self.language.name,
            "serial": self.serial,
            "model": self.model,
            "host": self.host,
            "port": self.port,
            "control": self.control_address,
            "online": self._server is not None,
            "labels_printed": printed,
            "labels_recorded": recorded,
            "formats_waiting": len(self._waiting),
            "bytes_waiting": self._waiting_bytes,
            "buffer_full": self.receive_blocked,
            "stalled_connections": len(self._stalled),
            "partial_formats": sum(1 for c in self._connections if c.stream.in_format),
            "connections_open": len(self._connections),
            "connections_total": self._connection_count,
            "bytes_received": self.bytes_received,
            "discarded_partial_formats": self._discarded_partial,
            "cancelled_formats": self._cancelled,
            "store": str(self.store) if self.store is not None else None,
            "store_failures": list(self._store.failures[-10:]) if self._store is not None else [],
            "drops": list(self._drops),
            "last_drop": self._drops[-1] if self._drops else None,
        }

    def _state(self) -> PrinterState:
        return PrinterState(
            serial=self.serial,
            model=self.model,
            firmware=self.firmware,
            fault=self._fault,
            formats_waiting=len(self._waiting),
            partial_format=any(c.stream.in_format for c in self._connections),
            buffer_full=self.receive_blocked,
            settings=dict(self._settings),
        )

    async def apply_fault(self, fault: str, delay_s: float | None = None) -> dict[str, Any]:
        """Put a fault in force (call on the printer's loop); ValueError for an unknown one."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)}")
        if delay_s is not None:
            if not 0 < delay_s <= 60:
                raise ValueError(f"delay_s must be above 0 and at most 60 seconds, not {delay_s}")
            self._slow_delay_s = delay_s
        previous = self._fault
        if previous == "offline" and fault != "offline":
            self._server = await self._listen(self.port)
        if fault == "offline" and previous != "offline":
            self._go_offline()
        if previous == "slow" and self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        self._fault = fault
        if fault != "stall":
            self._unstall()
        self._pump()
        return self.status_snapshot()

    async def apply_confirm(self, mode: str, delay_s: float | None = None) -> dict[str, Any]:
        """Set the confirm mode (call on the printer's loop); ValueError for an unknown one."""
        if mode not in CONFIRM_MODES:
            raise ValueError(f"unknown confirm mode {mode!r}: use one of {', '.join(CONFIRM_MODES)}")
        if delay_s is not None:
            if not 0 < delay_s <= 600:
                raise ValueError(f"delay_s must be above 0 and at most 600 seconds, not {delay_s}")
            self._confirm_delay_s = delay_s
        self._confirm_mode = mode
        self._pump()
        return self.status_snapshot()

    def _stall(self, connection: _Connection) -> None:
        """Stop reading `connection` in the middle of the label that just started, keeping it open.

        As a printer whose receive buffer filled during a long job: the bytes already read wait
        in the parser, the rest in the socket, and once the kernel's buffers are full the TCP
        window is zero and the sender's writes block. Queries behind the label go unanswered.
        """
        if connection.transport is not None and not connection.reading_paused:
            connection.transport.pause_reading()
        connection.stalled = True
        self._stalled.add(connection)

    def _unstall(self) -> None:
        stalled = list(self._stalled)
        self._stalled.clear()
        loop = asyncio.get_running_loop()
        for connection in stalled:
            loop.call_soon(connection.unstall)

    def _go_offline(self) -> None:
        if self._server is not None:
            # Closing the listening socket makes new connections fail with "connection refused".
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()

    # ----- connections and events ------------------------------------------------------------

    def _connection_opened(self, connection: _Connection) -> None:
        if self._fault == "offline" and connection.transport is not None:
            connection.transport.abort()
            return
        self._connections.add(connection)

    def _connection_lost(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if connection.stalled:
            return  # the label's bytes already read are parsed when the stall is cleared
        if connection in self._blocked and not self.receive_blocked:
            connection.resume()
        elif connection not in self._blocked:
            self._finish_closed(connection)

    def _finish_closed(self, connection: _Connection) -> None:
        self._blocked.discard(connection)
        if connection.stream.in_format:
            # A job cut off by a closed connection is never printed, as on a real printer.
            self._discarded_partial += 1

    def _handle(self, connection: _Connection, event: PrinterEvent) -> None:
        if isinstance(event, JobComplete):
            self._accept(event.raw, connection.number)
        elif isinstance(event, JobStarted):
            if self._fault == "drop":
                self._drop(connection)
            elif self._fault == "stall":
                self._stall(connection)
        elif isinstance(event, PrinterQuery):
            if self._fault != "silent":
                answer = self.language.answer(event, self._state())
                if answer:
                    connection.write(answer)
        elif isinstance(event, PrinterCommand):
            self._command(event)

    def _drop(self, connection: _Connection) -> None:
        self._drops.append(
            {
                "connection": connection.number,
                "at": _iso(time.time()),
                "label_printed": False,
                "bytes_discarded": connection.stream.pending_bytes,
            }
        )
        self._fault = "none"
        connection.stream = self.language.new_stream()
        if connection.transport is not None:
            connection.transport.abort()

    def _command(self, command: PrinterCommand) -> None:
        if command.kind == "cancel_all":
            self._cancelled += len(self._waiting)
            self._waiting.clear()
            self._waiting_bytes = 0
        elif command.kind == "resume" and self._fault == "paused":
            self._fault = "none"
        elif command.kind == "pause" and self._fault == "none":
            self._fault = "paused"
        elif command.kind == "reset":
            self._cancelled += len(self._waiting)
            self._waiting.clear()
            self._waiting_bytes = 0
            if self._fault == "paused":
                self._fault = "none"
        elif command.kind == "sgd_setvar":
            self._settings[command.argument] = command.value
        self._pump()

    # ----- the print engine ------------------------------------------------------------------

    def _accept(self, raw: bytes, connection: int) -> None:
        job = _Job(raw, time.time(), connection)
        if self._confirm_mode == "fault_after_accept" and self._fault not in HOLDING_FAULTS:
            # Took the label in, then ran out of paper before printing it (once).
            self._confirm_mode = "at_once"
            self._fault = "paper_out"
        at_once = self._confirm_mode == "at_once"
        if not self._waiting and self._fault not in HOLDING_FAULTS and self._fault != "slow" and at_once:
            self._print(job)
            return
        self._waiting.append(job)
        self._waiting_bytes += len(raw)
        self._pump()

    def _pump(self) -> None:
        if self._fault in HOLDING_FAULTS:
            return
        if self._fault == "slow":
            if self._slow_timer is None and self._waiting:
                loop = asyncio.get_running_loop()
                self._slow_timer = loop.call_later(self._slow_delay_s, self._print_slowly)
        elif self._confirm_mode == "delay":
            # Each label prints `delay_s` after it came in, first in, first out.
            now = time.time()
            while self._waiting and self._waiting[0].received_at + self._confirm_delay_s <= now:
                self._print(self._take())
            if self._waiting and self._confirm_timer is None:
                due = self._waiting[0].received_at + self._confirm_delay_s - now
                self._confirm_timer = asyncio.get_running_loop().call_later(max(due, 0.001), self._print_due)
        else:
            while self._waiting:
                self._print(self._take())
        self._resume_blocked()

    def _print_due(self) -> None:
        self._confirm_timer = None
        self._pump()

    def _print_slowly(self) -> None:
        self._slow_timer = None
        if self._fault == "slow" and self._waiting:
            self._print(self._take())
        self._pump()

    def _take(self) -> _Job:
        job = self._waiting.popleft()
        self._waiting_bytes -= len(job.raw)
        return job

    def _resume_blocked(self) -> None:
        if self._blocked and not self.receive_blocked:
            blocked = list(self._blocked)
            self._blocked.clear()
            loop = asyncio.get_running_loop()
            for connection in blocked:
                loop.call_soon(connection.resume)

    def _print(self, job: _Job) -> None:
        fields = self.language.fields(job.raw)
        index = self._next_index
        self._next_index += 1
        if self._store is not None:
            self._store.put(index, job.raw)
        label = PrintedLabel(index, job.received_at, time.time(), job.raw, fields, job.connection)
        with self._lock:
            self._printed_total += 1
            self._labels.append(label)
            self._printed.notify_all()


def _check_range(name: str, value: int | None, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
    ):
        raise ValueError(f"{name} must be a whole number of bytes from {low} to {high}, not {value!r}")
