"""Real protocol peers for the device driver tests: a TCP printer and pty scales, written here.

They share no code with the drivers (a protocol bug must not hide on both sides). Every peer
runs in a thread that its fixture stops.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def wait_for(condition: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Wait until `condition()` is truthy, failing the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.002)


def host_status(
    *,
    paper_out: int = 0,
    paused: int = 0,
    formats: int = 0,
    buffer_full: int = 0,
    head_up: int = 0,
    ribbon_out: int = 0,
) -> bytes:
    """A Zebra ~HS reply as the ZPL manual lays it out (three STX..ETX CR LF strings)."""
    one = f"030,{paper_out},{paused},1218,{formats:03d},{buffer_full},0,0,000,0,0,0"
    two = f"001,0,{head_up},{ribbon_out},0,2,4,0,00000000,1,000"
    three = "1234,0"
    return b"".join(b"\x02" + s.encode() + b"\x03\r\n" for s in (one, two, three))


class ZebraPeer:
    """A raw-TCP ZPL printer: records what it receives, answers ~HS, ~HI and SGD getvar."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port = self.server.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self.status = host_status()
        self.silent = False
        self.unique_id: str | None = "XXZJ221400123"
        self.mac = "00:07:4d:aa:bb:cc"
        self.hi_reply = b"\x02ZD421-203dpi,V84.20.18Z,8,8176KB\x03\r\n"
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                clients = list(self._clients)
            try:
                readable, _, _ = select.select([self.server, *clients], [], [], 0.01)
            except (OSError, ValueError):  # a client `drop` closed meanwhile
                continue
            if self.server in readable:
                with contextlib.suppress(TimeoutError, OSError):
                    client, _ = self.server.accept()
                    client.setblocking(False)
                    with self._lock:
                        self._clients.append(client)
                        self.connections += 1
            for client in readable:
                if client is self.server:
                    continue
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.drop(client)
                    continue
                self._handle(client, data)

    def _handle(self, client: socket.socket, data: bytes) -> None:
        with self._lock:
            self.received += data
        if self.silent:
            return
        replies = b""
        if b"~HS" in data:
            replies += self.status
        if b"~HI" in data:
            replies += self.hi_reply
        if b'getvar "device.unique_id"' in data:
            replies += f'"{self.unique_id or "?"}"'.encode()
        if b'getvar "internal_wired.mac_addr"' in data:
            replies += f'"{self.mac}"'.encode()
        if b'getvar "wlan.mac_addr"' in data:
            replies += b'"?"'
        if replies:
            with contextlib.suppress(OSError):
                client.sendall(replies)

    def drop(self, client: socket.socket | None = None) -> None:
        """Close one client connection (or all), as a printer that restarts does."""
        with self._lock:
            victims = [client] if client is not None else list(self._clients)
            for victim in victims:
                if victim in self._clients:
                    self._clients.remove(victim)
                with contextlib.suppress(OSError):
                    # shutdown first: the serving thread may be polling this socket, and a bare
                    # close would only take effect (send FIN) when that poll returns.
                    victim.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    victim.close()

    def labels(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.drop()
        self.server.close()


@pytest.fixture
def zebra() -> Iterator[ZebraPeer]:
    peer = ZebraPeer()
    yield peer
    peer.close()


class PtyScalePeer:
    """A scale on a pty: answers each command line with `respond`, or streams for continuous ones.

    The driver opens `path`, a symlink to the pty, so an unplug (master closed) and a replug
    (a new pty behind the same path) look like a USB adapter coming back at the same name.
    """

    def __init__(
        self,
        directory: Path,
        respond: Callable[[bytes], bytes | None],
        *,
        terminator: bytes = b"\r\n",
        seven_bit_parity: bool = False,
    ) -> None:
        self.path = str(directory / "scale")
        self.respond = respond
        self.terminator = terminator
        self.seven_bit_parity = seven_bit_parity
        self.commands: list[bytes] = []
        self.stream: Callable[[], bytes] | None = None  # continuous scales: next line to send
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._master = -1
        self._slave = -1
        self._plug()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _plug(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        # The slave end stays open in the peer so the pty survives between driver opens.
        self._master, self._slave = master, slave
        link = self.path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)
        os.replace(link, self.path)

    def unplug(self) -> None:
        with self._lock:
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def replug(self) -> None:
        with self._lock:
            self._plug()

    def write(self, data: bytes) -> None:
        """Send raw bytes to the driver (noise, unsolicited frames)."""
        if self.seven_bit_parity:
            data = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in data)  # even parity in bit 7
        with self._lock:
            if self._master >= 0:
                os.write(self._master, data)

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            with self._lock:
                master = self._master
            if master < 0:
                self._stop.wait(0.005)
                continue
            try:
                readable, _, _ = select.select([master], [], [], 0.01)
                data = os.read(master, 1024) if readable else b""
            except OSError:
                data = b""
            if self.stream is not None:
                self.write(self.stream())
                self._stop.wait(0.01)
            pending += data
            while pending and (not self.terminator or self.terminator in pending):
                if self.terminator:
                    command, pending = pending.split(self.terminator, 1)
                else:  # single-letter commands
                    command, pending = pending[:1], pending[1:]
                self.commands.append(command)
                reply = self.respond(command)
                if reply:
                    with contextlib.suppress(OSError):
                        self.write(reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with contextlib.suppress(OSError):
            if self._master >= 0:
                os.close(self._master)
                os.close(self._slave)


class SicsBalance:
    """What an MT-SICS scale answers, from its current weight and mode (written from the MT-SICS manual)."""

    def __init__(self) -> None:
        self.value = "0.000"
        self.unit = "kg"
        self.mode = "S"  # S stable, D dynamic, + overload, - underload, I busy
        self.zero_reply = "Z A"
        self.tare_reply = "T S      0.000 kg"
        self.answer = True

    def __call__(self, command: bytes) -> bytes | None:
        if not self.answer:
            return None
        if command in (b"SI", b"S"):
            if self.mode in ("+", "-", "I"):
                return f"S {self.mode}\r\n".encode()
            return f"S {self.mode} {self.value:>10} {self.unit}\r\n".encode()
        if command == b"Z":
            return f"{self.zero_reply}\r\n".encode()
        if command == b"T":
            return f"{self.tare_reply}\r\n".encode()
        if command == b"TAC":
            return b"TAC A\r\n"
        return b"ES\r\n"


@pytest.fixture
def sics(tmp_path: Path) -> Iterator[tuple[PtyScalePeer, SicsBalance]]:
    balance = SicsBalance()
    peer = PtyScalePeer(tmp_path, balance)
    yield peer, balance
    peer.close()


Sics = tuple[PtyScalePeer, SicsBalance]


class EscposPeer(ZebraPeer):
    """A raw-TCP ESC/POS printer: answers DLE EOT 1/2/4 with one status byte each and GS I 68."""

    def __init__(self) -> None:
        self.printer_byte = 0x12  # online
        self.cause_byte = 0x12  # no offline cause
        self.paper_byte = 0x12  # paper present
        self.serial_number: bytes | None = b"TM88-J2SF001234"
        super().__init__()

    def _handle(self, client: socket.socket, data: bytes) -> None:
        with self._lock:
            self.received += data
        if self.silent:
            return
        replies = b""
        for n, byte in ((1, self.printer_byte), (2, self.cause_byte), (4, self.paper_byte)):
            replies += bytes([byte]) * data.count(b"\x10\x04" + bytes([n]))
        if b"\x1dI\x44" in data and self.serial_number is not None:
            replies += b"_" + self.serial_number + b"\x00"
        if replies:
            with contextlib.suppress(OSError):
                client.sendall(replies)


@pytest.fixture
def escpos_peer() -> Iterator[EscposPeer]:
    peer = EscposPeer()
    yield peer
    peer.close()
