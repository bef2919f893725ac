"""The ESC/POS side of the mock printer: a command-aware stream parser and real-time status bytes.

A receipt runs until a cut (`GS V m [n]`, or the legacy `ESC i` / `ESC m`). The parser knows the
length of every common command, including the ones that carry binary payloads (raster images
`GS v 0`, bit images `ESC *`, graphics `GS ( L` / `GS 8 L`, 2D codes `GS ( k`, barcodes `GS k`), so
payload bytes that happen to look like a cut or a status request are never mistaken for one.

`DLE EOT n` is a real-time command: the printer answers it the moment it arrives, even between
the bytes of a receipt, with one status byte (Epson TM series layout; bits 1 and 4 always on):

- n=1 printer status: bit 2 drawer pin 3, bit 3 offline.
- n=2 offline cause: bit 2 cover open, bit 3 feeding by the FEED button, bit 5 printing stopped by
  paper end, bit 6 error occurred.
- n=3 error cause: bit 3 autocutter error, bit 5 unrecoverable error, bit 6 auto-recoverable error.
- n=4 roll paper sensor: bits 2-3 paper near end, bits 5-6 paper end.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware_mocks.printer_events import (
    Blocked,
    JobComplete,
    JobStarted,
    PrinterEvent,
    PrinterQuery,
)
from hardware_mocks.printer_stream import ReceiveBuffer

__all__ = ["MAX_RECEIPT_BYTES", "EscposCondition", "EscposStream", "printed_lines", "realtime_status"]

MAX_RECEIPT_BYTES = 8 * 1024 * 1024

DLE, EOT, ENQ, DC4 = 0x10, 0x04, 0x05, 0x14
ESC, GS, FS, LF, NUL = 0x1B, 0x1D, 0x1C, 0x0A, 0x00

# Commands of fixed length, keyed by their second byte.
_ESC_FIXED = {
    ord("@"): 2, ord("2"): 2, ord("S"): 2, ord("L"): 2, ord("<"): 2,
    ord("!"): 3, ord("-"): 3, ord("E"): 3, ord("G"): 3, ord("M"): 3, ord("a"): 3, ord("d"): 3,
    ord("e"): 3, ord("J"): 3, ord("K"): 3, ord("t"): 3, ord("R"): 3, ord("{"): 3, ord("3"): 3,
    ord("V"): 3, ord("r"): 3, ord(" "): 3, ord("%"): 3, ord("T"): 3, ord("U"): 3, ord("="): 3,
    ord("?"): 3, ord("c"): 4, ord("$"): 4, ord("\\"): 4, ord("B"): 4, ord("p"): 5, ord("W"): 10,
}  # fmt: skip
_GS_FIXED = {
    ord(":"): 2,
    ord("!"): 3, ord("B"): 3, ord("H"): 3, ord("f"): 3, ord("h"): 3, ord("w"): 3, ord("a"): 3,
    ord("r"): 3, ord("I"): 3, ord("b"): 3, ord("E"): 3, ord("/"): 3,
    ord("L"): 4, ord("W"): 4, ord("$"): 4, ord("\\"): 4, ord("P"): 4, ord("^"): 5,
}  # fmt: skip
_FS_FIXED = {
    ord("."): 2,
    ord("&"): 2,
    ord("!"): 3,
    ord("C"): 3,
    ord("W"): 3,
    ord("-"): 3,
    ord("p"): 4,
    ord("S"): 4,
}
_CUT_SHORT = {0, 1, 48, 49}
_CUT_WITH_FEED = {65, 66, 97, 98, 103, 104}
_CODE_PAGES = {
    0: "cp437",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    16: "cp1252",
    17: "cp866",
    19: "cp858",
}


def _command(buffer: bytes | bytearray, pos: int) -> tuple[int, str] | None:
    """Length and kind of the command at pos, or None when its bytes have not all arrived."""
    available = len(buffer) - pos
    first = buffer[pos]
    if first >= 0x20:
        end = pos + 1
        while end < len(buffer) and buffer[end] >= 0x20:
            end += 1
        return end - pos, "text"
    if first == LF:
        return 1, "line"
    if first not in (ESC, GS, FS):
        return 1, "control"
    if available < 2:
        return None
    second = buffer[pos + 1]
    if first == ESC:
        if second in (ord("i"), ord("m")):
            return 2, "cut"
        if second == ord("*"):
            return _sized(
                buffer, pos, 5, lambda h: (h[3] + h[4] * 256) * (1 if h[2] in (0, 1) else 3), "image"
            )
        if second == ord("D"):
            return _until_nul(buffer, pos, 2, "command")
        if second == ord("&"):
            return _user_characters(buffer, pos)
        length = _ESC_FIXED.get(second, 2)
        kind = "code_page" if second == ord("t") else "command"
        return (length, kind) if available >= length else None
    if first == GS:
        if second == ord("V"):
            if available < 3:
                return None
            length = 4 if buffer[pos + 2] in _CUT_WITH_FEED else 3
            return (length, "cut") if available >= length else None
        if second == ord("v"):
            return _sized(buffer, pos, 8, lambda h: (h[4] + h[5] * 256) * (h[6] + h[7] * 256), "image")
        if second == ord("k"):
            if available < 3:
                return None
            if buffer[pos + 2] <= 6:
                return _until_nul(buffer, pos, 3, "barcode")
            return _sized(buffer, pos, 4, lambda h: h[3], "barcode")
        if second == ord("("):
            return _sized(buffer, pos, 5, lambda h: h[3] + h[4] * 256, "extended")
        if second == ord("8"):
            return _sized(buffer, pos, 7, lambda h: h[3] + (h[4] << 8) + (h[5] << 16) + (h[6] << 24), "image")
        if second == ord("*"):
            return _sized(buffer, pos, 4, lambda h: h[2] * h[3] * 8, "image")
        length = _GS_FIXED.get(second, 2)
        return (length, "command") if available >= length else None
    if second == ord("("):
        return _sized(buffer, pos, 5, lambda h: h[3] + h[4] * 256, "extended")
    length = _FS_FIXED.get(second, 2)
    return (length, "command") if available >= length else None


def _sized(
    buffer: bytes | bytearray, pos: int, header: int, payload: object, kind: str
) -> tuple[int, str] | None:
    if len(buffer) - pos < header:
        return None
    assert callable(payload)
    length = header + int(payload(buffer[pos : pos + header]))
    return (length, kind) if len(buffer) - pos >= length else None


def _until_nul(buffer: bytes | bytearray, pos: int, start: int, kind: str) -> tuple[int, str] | None:
    end = buffer.find(b"\x00", pos + start)
    if end < 0:
        # A missing NUL in a barcode would swallow the rest of the stream; real printers cap it too.
        return (len(buffer) - pos, kind) if len(buffer) - pos > 256 else None
    return end + 1 - pos, kind


def _user_characters(buffer: bytes | bytearray, pos: int) -> tuple[int, str] | None:
    if len(buffer) - pos < 5:
        return None
    height, first, last = buffer[pos + 2], buffer[pos + 3], buffer[pos + 4]
    cursor = pos + 5
    for _ in range(max(0, last - first + 1)):
        if cursor >= len(buffer):
            return None
        cursor += 1 + height * buffer[cursor]
    return (cursor - pos, "command") if cursor <= len(buffer) else None


class EscposStream(ReceiveBuffer):
    """Turns one connection's ESC/POS byte stream into printer events, whatever the read boundaries."""

    def next_event(self, jobs_allowed: bool = True) -> PrinterEvent | None:
        """The next event in stream order, `Blocked` when jobs are refused, None when bytes are short."""
        buffer = self._buffer
        while self._position < len(buffer):
            pos = self._position
            if buffer[pos] == DLE:
                if len(buffer) - pos < 3:
                    return None
                realtime, argument = buffer[pos + 1], buffer[pos + 2]
                if realtime in (EOT, ENQ):
                    self._position = pos + 3
                    if realtime == EOT and 1 <= argument <= 4:
                        return PrinterQuery("realtime_status", str(argument))
                    continue
                if realtime == DC4:
                    if len(buffer) - pos < 5:
                        return None
                    self._position = pos + 5
                    continue
            if not jobs_allowed:
                return Blocked()
            if self._job is None:
                self._job = bytearray()
                return JobStarted()
            command = _command(buffer, pos)
            if command is None:
                return None
            length, kind = command
            self._job += buffer[pos : pos + length]
            self._position = pos + length
            if kind == "cut":
                raw = bytes(self._job)
                self._job = None
                return JobComplete(raw)
            if len(self._job) > MAX_RECEIPT_BYTES:
                self._job = None
                self.oversized_formats += 1
        return None


def printed_lines(raw: bytes) -> list[str]:
    """The text lines a receipt prints, in order, plus barcode and QR data; images are skipped."""
    lines: list[str] = []
    current = bytearray()
    encoding = "cp437"
    pos = 0
    while pos < len(raw):
        command = _command(raw, pos)
        if command is None:
            break
        length, kind = command
        chunk = raw[pos : pos + length]
        if kind == "text":
            current += chunk
        elif kind in ("line", "cut"):
            _flush(lines, current, encoding)
        elif kind == "code_page":
            encoding = _CODE_PAGES.get(chunk[2], encoding)
        elif kind == "barcode":
            _flush(lines, current, encoding)
            data = chunk[3:-1] if chunk[2] <= 6 else chunk[4:]
            lines.append(data.decode("ascii", "replace"))
        elif kind == "extended" and chunk[2:3] == b"k" and chunk[5:7] == b"\x31\x50":
            # GS ( k cn=49 fn=80: store QR data.
            _flush(lines, current, encoding)
            lines.append(chunk[8:].decode("utf-8", "replace"))
        pos += length
    _flush(lines, current, encoding)
    return lines


def _flush(lines: list[str], current: bytearray, encoding: str) -> None:
    text = current.decode(encoding, "replace").strip()
    if text:
        lines.append(text)
    current.clear()


@dataclass(frozen=True, slots=True)
class EscposCondition:
    """The faults a receipt printer's status bytes can show."""

    cover_open: bool = False
    paper_end: bool = False
    paused: bool = False
    error: bool = False


def realtime_status(n: int, condition: EscposCondition) -> bytes:
    """The one-byte answer to `DLE EOT n` (n = 1..4)."""
    value = 0x12
    offline = condition.cover_open or condition.paper_end or condition.paused or condition.error
    if n == 1:
        value |= 0x08 if offline else 0
    elif n == 2:
        value |= 0x04 if condition.cover_open else 0
        value |= 0x20 if condition.paper_end else 0
        value |= 0x40 if condition.error else 0
    elif n == 3:
        value |= 0x40 if condition.error else 0
    elif n == 4:
        value |= 0x6C if condition.paper_end else 0
    else:
        raise ValueError(f"DLE EOT n takes n from 1 to 4, not {n}")
    return bytes([value])
