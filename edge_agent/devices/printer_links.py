"""The byte pipes a printer driver writes labels into: one kept-open TCP socket, a serial port, a file.

A link is opened lazily, kept for every label after that and reopened after an error, so the
pack path never pays for a connect. Only a TCP link can take a label without waiting
(`write_nowait`); every link answers None there when it cannot, and the caller then writes
through the printer's lane thread. Links turn socket and serial errors into PrinterError
messages that name the printer, its address and what to check; the language on top (ZPL)
decides what the bytes mean.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

import serial

from dockside.errors import PrinterError, PrinterUnreachable, PrinterUnusable

from .config import PrinterConfig

__all__ = ["FileLink", "PrinterLink", "SerialLink", "TcpLink", "open_link"]

# A printer reply (status, identity) is a few hundred bytes; a peer sending more is not a printer.
MAX_REPLY_BYTES = 64 * 1024


class PrinterLink(Protocol):
    """A connection to one printer that stays open between labels."""

    can_read: bool

    def open(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def write_nowait(self, data: bytes) -> int | None: ...
    def finish(self) -> None: ...
    def drain(self) -> None: ...
    def read_until(self, done: Callable[[bytes], bool], timeout_s: float) -> bytes: ...
    def close(self) -> None: ...


class TcpLink:
    """One persistent raw TCP connection (port 9100 style), TCP_NODELAY, bounded connect and write.

    The socket is non-blocking: `write_nowait` hands a label to it from the event loop without
    ever waiting (no connect, no full buffer), and every operation that may wait (connect,
    `write`, `finish`, the status reply) runs in the printer's lane thread with its own
    deadline. Writes take `_write_lock`, reads never do: a label can go out while a status
    query waits for its reply, and only the lane thread reads.
    """

    can_read = True

    def __init__(self, config: PrinterConfig, *, connect_timeout_s: float, write_timeout_s: float) -> None:
        self._config = config
        self._connect_timeout_s = connect_timeout_s
        self._write_timeout_s = write_timeout_s
        self._sock: socket.socket | None = None
        self._write_lock = threading.Lock()
        # The tail of a label `write_nowait` could not hand over at once: it goes out before
        # anything else (see `finish`).
        self._unsent = b""
        # Connections the printer closed on us; one right after a label means it may be lost.
        self.peer_closes = 0

    @property
    def _where(self) -> str:
        return f"printer {self._config.id} at {self._config.host}:{self._config.port}"

    def open(self) -> None:
        with self._write_lock:
            if self._sock is None:
                self._sock = self._connect()

    def _connect(self) -> socket.socket:
        host, port = self._config.host or "", self._config.port
        try:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout_s)
        except socket.gaierror as exc:
            raise PrinterUnreachable(
                f"{self._where} cannot be found ({exc.strerror}): check the printer's host name "
                "in the station settings",
                code="printer_unreachable",
                params={"printer": self._config.id},
            ) from exc
        except ConnectionRefusedError as exc:
            raise PrinterUnreachable(
                f"{self._where} refused the connection: check that the printer is on and that "
                f"{port} is its raw printing port",
                code="printer_unreachable",
                params={"printer": self._config.id},
            ) from exc
        except TimeoutError as exc:
            raise PrinterUnreachable(
                f"{self._where} did not answer within {self._connect_timeout_s:g} s: check that it is "
                "on, its network cable is plugged in and its address is right",
                code="printer_unreachable",
                params={"printer": self._config.id},
            ) from exc
        except OSError as exc:
            raise PrinterUnreachable(
                f"{self._where} cannot be reached ({exc.strerror or exc}): check that it is on and "
                "on the same network as this PC",
                code="printer_unreachable",
                params={"printer": self._config.id},
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setblocking(False)
        return sock

    def _usable(self) -> socket.socket:
        """The open socket, reconnected first if the printer closed it while we were idle."""
        sock = self._sock
        if sock is not None and self.peer_closed(sock):
            self.peer_closes += 1
            self._close_locked()
            sock = None
        if sock is None:
            sock = self._sock = self._connect()
        return sock

    @staticmethod
    def peer_closed(sock: socket.socket) -> bool:
        """True if the peer closed `sock`; stale bytes waiting in it are dropped (lane thread only)."""
        # A printer that restarted or timed out the idle connection has sent FIN or RST; writing
        # into that socket would "succeed" and lose the label, so look before writing (a few us).
        # Anything else waiting there is a stale reply nobody reads any more: drop it.
        for _ in range(64):
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            try:
                if not sock.recv(4096):
                    return True
            except BlockingIOError:
                return False
            except OSError:
                return True
        return False  # a peer that keeps talking is alive; what it said is dropped

    @staticmethod
    def _closed_by_peer_peek(sock: socket.socket) -> bool:
        """True if the peer closed `sock`, looking without taking a byte (safe beside a reader)."""
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return not sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _send_all(self, sock: socket.socket, data: bytes) -> None:
        """Write every byte before the write deadline; PrinterError (and the link closed) if not."""
        view = memoryview(data)
        deadline = time.monotonic() + self._write_timeout_s
        try:
            while view:
                try:
                    sent = sock.send(view)
                except BlockingIOError:
                    sent = 0
                view = view[sent:]
                if not view:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                select.select([], [sock], [], remaining)
        except TimeoutError as exc:
            self._close_locked()
            raise PrinterError(
                f"{self._where} did not take the data within {self._write_timeout_s:g} s: check that "
                "it is not paused or jammed, then reprint",
                code="printer_send_timeout",
                params={"printer": self._config.id},
            ) from exc
        except OSError as exc:
            self._close_locked()
            raise PrinterError(
                f"{self._where} dropped the connection while receiving ({exc.strerror or exc}): "
                "check the printer, then reprint",
                code="printer_send_failed",
                params={"printer": self._config.id},
            ) from exc

    def write(self, data: bytes) -> None:
        """Write `data` after any unfinished label, connecting first if needed (may wait: lane thread)."""
        with self._write_lock:
            self._finish_locked()
            self._send_all(self._usable(), data)

    def write_nowait(self, data: bytes) -> int | None:
        """Start `data` without waiting: how many bytes the socket took, or None if none went out.

        Never connects and never waits for buffer space or for another writer: whatever would
        wait (no connection yet, a closed one, a full buffer, a status request being written)
        answers None, and the caller sends through `write` in the lane thread instead. When only
        part went out, the rest is kept and goes out first through `finish`.
        """
        if not self._write_lock.acquire(blocking=False):
            return None
        try:
            sock = self._sock
            if sock is None or self._unsent or self._closed_by_peer_peek(sock):
                return None
            try:
                sent = sock.send(data)
            except OSError:  # BlockingIOError or a broken socket: the lane thread sorts it out
                return None
            if sent <= 0:
                return None
            self._unsent = data[sent:]
            return sent
        finally:
            self._write_lock.release()

    def finish(self) -> None:
        """Write what `write_nowait` left unsent (lane thread); PrinterError if the printer stops."""
        with self._write_lock:
            self._finish_locked()

    def _finish_locked(self) -> None:
        rest, self._unsent = self._unsent, b""
        if not rest:
            return
        sock = self._sock
        if sock is None:
            raise PrinterError(
                f"{self._where} dropped the connection in the middle of a label: check the printer, "
                "then reprint",
                code="printer_send_failed",
                params={"printer": self._config.id},
            )
        self._send_all(sock, rest)

    def drain(self) -> None:
        with self._write_lock:
            if self._sock is not None and self.peer_closed(self._sock):
                self.peer_closes += 1
                self._close_locked()

    def read_until(self, done: Callable[[bytes], bool], timeout_s: float) -> bytes:
        """Bytes read until `done(buffer)` holds or the time is up (then whatever came)."""
        sock = self._sock
        buffer = bytearray()
        if sock is None:
            return b""
        deadline = time.monotonic() + timeout_s
        try:
            while not done(bytes(buffer)) and len(buffer) < MAX_REPLY_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                readable, _, _ = select.select([sock], [], [], remaining)
                if not readable:
                    break
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    self._peer_went_away(sock)
                    break
                buffer += chunk
        except OSError:
            self._peer_went_away(sock)
        return bytes(buffer)

    def _peer_went_away(self, sock: socket.socket) -> None:
        with self._write_lock:
            if self._sock is sock:
                self.peer_closes += 1
                self._close_locked()

    def close(self) -> None:
        with self._write_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        sock, self._sock = self._sock, None
        self._unsent = b""
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class SerialLink:
    """A printer on a serial port (RS-232 or a USB-serial adapter)."""

    can_read = True

    def __init__(self, config: PrinterConfig, *, write_timeout_s: float, baudrate: int = 9600) -> None:
        self._config = config
        self._write_timeout_s = write_timeout_s
        self._baudrate = baudrate
        self._port: serial.Serial | None = None

    @property
    def _where(self) -> str:
        return f"printer {self._config.id} on {self._config.device}"

    def open(self) -> None:
        if self._port is None:
            try:
                self._port = serial.Serial(
                    self._config.device, self._baudrate, timeout=0.02, write_timeout=self._write_timeout_s
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                raise PrinterUnreachable(
                    f"{self._where} cannot be opened ({exc}): check the cable and the port name",
                    code="printer_unreachable",
                    params={"printer": self._config.id},
                ) from exc

    def write(self, data: bytes) -> None:
        self.open()
        assert self._port is not None
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise PrinterError(
                f"{self._where} did not take the data ({exc}): check the cable, then reprint",
                code="printer_send_failed",
                params={"printer": self._config.id},
            ) from exc

    def write_nowait(self, data: bytes) -> int | None:
        # A serial write can wait (flow control, a full output buffer): always the lane thread.
        return None

    def finish(self) -> None:
        return None

    def drain(self) -> None:
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            except (serial.SerialException, OSError):
                self.close()

    def read_until(self, done: Callable[[bytes], bool], timeout_s: float) -> bytes:
        self.open()
        port = self._port
        assert port is not None
        buffer = bytearray()
        deadline = time.monotonic() + timeout_s
        try:
            while not done(bytes(buffer)) and len(buffer) < MAX_REPLY_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # The port's timeout stays fixed (see SerialLine); read returns at the first byte.
                buffer += port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError):
            self.close()
        return bytes(buffer)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()


class FileLink:
    """Labels appended to a file or device node (a spool file, /dev/usb/lp0); it cannot answer."""

    can_read = False

    def __init__(self, config: PrinterConfig) -> None:
        self._config = config
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        if self._file is None:
            try:
                self._file = open(self._config.device or "", "ab")  # noqa: SIM115 -- kept open on purpose
            except OSError as exc:
                raise PrinterUnreachable(
                    f"printer {self._config.id} at {self._config.device} cannot be opened for writing "
                    f"({exc.strerror or exc}): check the path and its permissions",
                    code="printer_unreachable",
                    params={"printer": self._config.id},
                ) from exc

    def write(self, data: bytes) -> None:
        self.open()
        assert self._file is not None
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self.close()
            raise PrinterError(
                f"printer {self._config.id} at {self._config.device} did not take the data "
                f"({exc.strerror or exc}): check the disk or device, then reprint",
                code="printer_send_failed",
                params={"printer": self._config.id},
            ) from exc

    def write_nowait(self, data: bytes) -> int | None:
        # A device node such as /dev/usb/lp0 blocks when the printer stalls: always the lane thread.
        return None

    def finish(self) -> None:
        return None

    def drain(self) -> None:
        return None

    def read_until(self, done: Callable[[bytes], bool], timeout_s: float) -> bytes:
        return b""

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


def open_link(config: PrinterConfig, *, connect_timeout_s: float, write_timeout_s: float) -> PrinterLink:
    """The link a printer's configured connection calls for (not yet connected)."""
    if config.connection == "tcp":
        return TcpLink(config, connect_timeout_s=connect_timeout_s, write_timeout_s=write_timeout_s)
    if config.connection == "serial":
        return SerialLink(config, write_timeout_s=write_timeout_s)
    if config.connection == "file":
        return FileLink(config)
    raise PrinterUnusable(
        f"printer {config.id} is connected by {config.connection}, which this driver does not use: "
        "connect it by network, serial or file",
        code="printer_connection_unsupported",
    )
