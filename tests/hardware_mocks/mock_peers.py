"""Test-side peers for the mocks: a raw ZPL socket client, a condition wait, a control API client.

Imported by the tests in this folder.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

STX, ETX = b"\x02", b"\x03"


def wait_until(condition: Callable[[], T], timeout_s: float = 5.0, what: str = "condition") -> T:
    """Poll `condition` until it returns something truthy; fail the test after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


class RawPrinterSocket:
    """A host's connection to port 9100: send bytes, read exact replies with a deadline."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self._pending = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, marker: bytes, count: int = 1) -> bytes:
        """Read until `marker` has been seen `count` times; returns those bytes."""
        while self._pending.count(marker) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"printer closed the connection; got {bytes(self._pending)!r}")
            self._pending += chunk
        end = 0
        for _ in range(count):
            end = self._pending.index(marker, end) + len(marker)
        data = bytes(self._pending[:end])
        del self._pending[:end]
        return data

    def read_exactly(self, size: int) -> bytes:
        while len(self._pending) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("printer closed the connection")
            self._pending += chunk
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def host_status(self) -> list[list[str]]:
        """Send ~HS and parse the three STX..ETX CR LF lines into their comma fields."""
        self.send(b"~HS")
        return self.read_status()

    def read_status(self) -> list[list[str]]:
        """Read and parse the three `~HS` lines (after a ~HS sent with other bytes)."""
        return parse_host_status(self.read_until(ETX + b"\r\n", 3))

    def close(self) -> None:
        self.sock.close()


def parse_host_status(reply: bytes) -> list[list[str]]:
    lines = reply.split(b"\r\n")
    assert lines[-1] == b"", reply
    parsed = []
    for line in lines[:-1]:
        assert line.startswith(STX), line
        assert line.endswith(ETX), line
        parsed.append(line[1:-1].decode("ascii").split(","))
    assert len(parsed) == 3, reply
    return parsed


def label(text: str) -> bytes:
    """A small real-looking label carrying one text field."""
    return f"^XA^CI28^FO50,50^A0N,40,40^FH^FD{text}^FS^XZ".encode()


def fields_of(labels: list[dict[str, Any]]) -> list[list[str]]:
    return [entry["fields"] for entry in labels]
