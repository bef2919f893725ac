"""The driver for ESC/POS receipt printers (packing slips) through python-escpos, with honest status.

The connection is one of python-escpos' backends (Network, Serial, Usb, File), opened once and
kept. Status uses the real-time DLE EOT requests n=1 (printer), n=2 (offline cause) and
n=4 (paper roll sensor), one status byte each. python-escpos 3.1's `paper_status()` calls an
empty reply "paper adequate"; a printer that says nothing has told us nothing, so here an empty
or short reply is `no_answer`. `parse_dle_eot` is a pure function. Real-time status is answered at
once, after the cut of everything sent before it: clear means those receipts printed, a fault
means they wait in the printer (`edge_agent.devices.print_confirmation`).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from typing import Any

import serial
from escpos import printer as escpos_backends
from escpos.exceptions import DeviceNotFoundError
from escpos.exceptions import Error as EscposError

from dockside.errors import PrinterError, PrinterUnreachable, PrinterUnusable

from .config import PrinterConfig
from .printer import PrinterStatus, status_of
from .printer_links import TcpLink

__all__ = ["STATUS_REQUEST", "EscposPrinter", "parse_dle_eot", "parse_usb_ids"]

DLE, EOT, GS = b"\x10", b"\x04", b"\x1d"
# DLE EOT 1, 2 and 4 in one write; the printer answers one byte each, in order.
STATUS_REQUEST = DLE + EOT + b"\x01" + DLE + EOT + b"\x02" + DLE + EOT + b"\x04"
SERIAL_NUMBER_REQUEST = GS + b"I\x44"  # GS I 68: "_" serial number NUL
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12  # bits 0 and 7 always 0, bits 1 and 4 always 1
OFFLINE, COVER_OPEN, PAPER_END_STOP, ERROR = 0x08, 0x04, 0x20, 0x40
NEAR_END, PAPER_END = 0x0C, 0x60
# A receipt printer runs out of paper rolls and has a cover, not labels and a print head.
RECEIPT_ADVICE = {
    "paper_out": "is out of paper: load a new roll and close the cover, then reprint",
    "head_open": "has its cover open: close it until it clicks",
}


def parse_dle_eot(reply: bytes, printer_name: str = "") -> PrinterStatus:
    """The status in the replies to DLE EOT 1, 2 and 4; `no_answer` if fewer than three bytes came.

    Raises PrinterError (printer_garbled_status) when the bytes are not ESC/POS status bytes.
    """
    name = printer_name or "(ESC/POS)"
    if len(reply) < 3:
        return status_of(name, {"no_answer"}, detail=f"{len(reply)} of 3 status bytes came back")
    printer, cause, paper = reply[-3:]  # anything before is a stale reply
    if any(byte & _FIXED_MASK != _FIXED_BITS for byte in (printer, cause, paper)):
        raise PrinterError(
            f"printer {name} answered the status request with {reply[-3:].hex(' ')}, which are not "
            "ESC/POS status bytes: check that the printer is set to ESC/POS",
            code="printer_garbled_status",
        )
    faults = set()
    details = []
    if cause & COVER_OPEN:
        faults.add("head_open")
    if cause & PAPER_END_STOP or paper & PAPER_END:
        faults.add("paper_out")
    if cause & ERROR:
        faults.add("offline")
        details.append("it reports an error: switch it off and on")
    if printer & OFFLINE and not faults:
        faults.add("offline")
    if paper & NEAR_END and "paper_out" not in faults:
        details.append("paper is running low")
    return status_of(name, faults, detail="; ".join(details), advice=RECEIPT_ADVICE)


def parse_usb_ids(device: str) -> tuple[int, int]:
    """Vendor and product id from "04b8:0202" (or "0x04b8:0x0202"); PrinterError otherwise."""
    try:
        vendor, product = (int(part, 16) for part in device.split(":"))
    except ValueError as exc:
        raise PrinterUnusable(
            f"USB printer device {device[:40]!r} is not vendor:product in hex (like 04b8:0202): "
            "fix it in the station settings",
            code="printer_connection_unsupported",
        ) from exc
    if not (0 <= vendor <= 0xFFFF and 0 <= product <= 0xFFFF):
        raise PrinterUnusable(
            f"USB ids {device[:40]!r} are out of range", code="printer_connection_unsupported"
        )
    return vendor, product


class EscposPrinter:
    """An ESC/POS printer on a kept-open python-escpos backend."""

    def __init__(
        self,
        config: PrinterConfig,
        *,
        connect_timeout_s: float = 2.0,
        write_timeout_s: float = 5.0,
        status_timeout_s: float = 1.0,
    ) -> None:
        self.config = config
        self._connect_timeout_s = connect_timeout_s
        self._write_timeout_s = write_timeout_s
        self._status_timeout_s = status_timeout_s
        self._backend: Any = None
        self._lock = threading.Lock()
        self.connection_drops = 0  # connections the printer closed on us (see PrinterLane.check)

    @property
    def can_confirm(self) -> bool:
        """Whether its status after the cut can confirm a receipt printed: not through a spool file,
        which cannot be read (a USB or serial printer that does not answer stays unconfirmed)."""
        return self.config.connection != "file"

    @property
    def _where(self) -> str:
        return f"printer {self.config.id} at {self.config.address}"

    # -- the connection ------------------------------------------------------------------------

    def _make_backend(self) -> Any:
        config = self.config
        if config.connection == "tcp":
            return escpos_backends.Network(config.host or "", config.port, timeout=self._connect_timeout_s)
        if config.connection == "serial":
            return escpos_backends.Serial(
                devfile=config.device or "", baudrate=9600, timeout=self._status_timeout_s, dsrdtr=False
            )
        if config.connection == "file":
            return escpos_backends.File(devfile=config.device or "")
        vendor, product = parse_usb_ids(config.device or "")
        if not escpos_backends.Usb.is_usable():
            raise PrinterError(
                f"{self._where} is on USB, but this PC has no USB printing support (pyusb, libusb): "
                "install them or connect the printer by network",
                code="printer_driver_missing",
            )
        return escpos_backends.Usb(vendor, product, timeout=int(self._write_timeout_s * 1000))

    def _connected(self) -> Any:
        backend = self._backend
        if backend is not None and self.config.connection == "tcp" and TcpLink.peer_closed(backend.device):
            self.connection_drops += 1
            self._drop()
            backend = None
        if backend is None:
            backend = self._make_backend()
            try:
                if self.config.connection == "tcp":
                    # Not Network.open: it keeps no hold on the socket of a refused connection and
                    # leaves it unclosed; create_connection closes it.
                    backend.device = socket.create_connection(
                        (backend.host, backend.port), timeout=self._connect_timeout_s
                    )
                else:
                    backend.open()
            except (DeviceNotFoundError, OSError, serial.SerialException) as exc:
                raise PrinterUnreachable(
                    f"{self._where} cannot be reached: check that it is on, connected, and that the "
                    "address in the station settings is right",
                    code="printer_unreachable",
                ) from exc
            if self.config.connection == "tcp":
                backend.device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                backend.device.settimeout(self._write_timeout_s)
            self._backend = backend
        return backend

    def _drop(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            with contextlib.suppress(Exception):  # closing a broken backend may fail in many ways
                backend.close()

    def _write(self, data: bytes) -> None:
        backend = self._connected()
        try:
            backend._raw(data)
        except (OSError, serial.SerialException, EscposError) as exc:
            self._drop()
            raise PrinterError(
                f"{self._where} did not take the data ({exc}): check the printer, then reprint",
                code="printer_send_failed",
            ) from exc

    def _read(self, count: int, done: bytes | None = None) -> bytes:
        """Up to `count` bytes (or through `done`) within the status timeout; what came if it ran out."""
        backend = self._backend
        if backend is None:
            return b""
        buffer = b""
        deadline = time.monotonic() + self._status_timeout_s
        try:
            while len(buffer) < count and not (done and done in buffer):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self.config.connection == "tcp":
                    readable, _, _ = select.select([backend.device], [], [], remaining)
                    chunk = backend.device.recv(count - len(buffer)) if readable else b""
                    if readable and not chunk:
                        self.connection_drops += 1
                        self._drop()
                        break
                elif self.config.connection == "serial":
                    chunk = backend.device.read(count - len(buffer))  # waits up to its timeout
                else:
                    chunk = backend._read()
                if not chunk:
                    break
                buffer += bytes(chunk)
        except (OSError, serial.SerialException, EscposError, NotImplementedError):
            self._drop()
        return buffer

    def _discard_input(self) -> None:
        backend = self._backend
        if backend is None:
            return
        if self.config.connection == "tcp" and TcpLink.peer_closed(backend.device):
            self.connection_drops += 1
            self._drop()
        elif self.config.connection == "serial":
            with contextlib.suppress(OSError, serial.SerialException):
                backend.device.reset_input_buffer()

    # -- the Printer interface -----------------------------------------------------------------

    def open(self) -> None:
        with self._lock:
            self._connected()

    def send(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def status(self) -> PrinterStatus:
        name = self.config.id
        if self.config.connection == "file":
            return status_of(name, (), detail=f"writes to {self.config.device}; it reports no status")
        with self._lock:
            try:
                self._discard_input()
                self._write(STATUS_REQUEST)
            except PrinterError as exc:
                return PrinterStatus(ready=False, faults=frozenset({"offline"}), message=exc.message)
            reply = self._read(3)
        try:
            return parse_dle_eot(reply, name)
        except PrinterError as exc:
            return PrinterStatus(ready=False, faults=frozenset({"no_answer"}), message=exc.message)

    def identify(self) -> str:
        if self.config.connection == "file":
            return f"file:{self.config.device}"
        with self._lock:
            self._discard_input()
            self._write(SERIAL_NUMBER_REQUEST)
            reply = self._read(64, done=b"\x00")
        start, end = reply.find(b"_"), reply.find(b"\x00")
        serial_number = reply[start + 1 : end].decode("ascii", "replace").strip() if 0 <= start < end else ""
        if serial_number:
            return serial_number
        raise PrinterError(
            f"{self._where} did not say its serial number: it may not support GS I; "
            "enter its id by hand in the station settings",
            code="printer_unidentified",
        )

    def close(self) -> None:
        with self._lock:
            self._drop()
