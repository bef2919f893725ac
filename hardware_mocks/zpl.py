"""The ZPL side of the mock printer: an incremental stream parser, field decoding and status replies.

A Zebra printer reads one byte stream per connection. Between formats it ignores stray bytes, acts at
once on tilde commands (`~HS`, `~HI`, `~JA`...) and on Set-Get-Do lines (`! U1 getvar "..."`); a
format runs from `^XA` to `^XZ` and may arrive split over any number of TCP reads. Host query
tilde commands are acted on even in the middle of a format and are not part of it. Raw CR and LF
bytes are ignored inside field data, exactly as the firmware does.

Reply layouts follow the ZPL II Programming Guide:

- `~HS`: three lines, each `STX ... ETX CR LF`:
  `aaa,b,c,dddd,eee,f,g,h,iii,j,k,l` (interface settings, paper out, pause, label length in dots,
  formats in receive buffer, buffer full, diagnostic mode, partial format, unused, corrupt RAM,
  under temperature, over temperature), then `mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www` (function
  settings, unused, head up, ribbon out, thermal transfer mode, print mode, print width mode,
  label waiting, labels remaining in batch, format while printing, graphics stored), then
  `xxxx,y` (password, static RAM installed).
- `~HI`: `STX model,firmware,dots per mm,memory ETX CR LF`.
- SGD `getvar`: the value in double quotes, no line ending; `"?"` for an unknown name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hardware_mocks.printer_events import (
    Blocked,
    JobComplete,
    JobStarted,
    PrinterCommand,
    PrinterEvent,
    PrinterQuery,
)
from hardware_mocks.printer_stream import ReceiveBuffer

__all__ = [
    "MAX_FORMAT_BYTES",
    "ZplStatus",
    "ZplStream",
    "decode_fields",
    "host_identification",
    "host_status",
    "sgd_host_status",
]

# A 4x6 label with a full-page ^GF graphic is about 250 KB of hex; 8 MiB leaves room for anything real.
MAX_FORMAT_BYTES = 8 * 1024 * 1024
# A Set-Get-Do line longer than this is not one: the `!` was a stray byte.
_MAX_SGD_LINE = 1024

STX = b"\x02"
ETX = b"\x03"

# Tilde commands a printer executes on receipt, even inside a format, and never keeps in the format.
_IMMEDIATE_TILDE = {
    b"HS": ("query", "host_status"),
    b"HI": ("query", "host_identification"),
    b"HM": ("query", "host_memory"),
    b"HD": ("query", "head_diagnostic"),
    b"JA": ("command", "cancel_all"),
    b"PS": ("command", "resume"),
    b"PP": ("command", "pause"),
    b"JR": ("command", "reset"),
}

_OUTSIDE_MARK = re.compile(rb"[\^~!]")
_INSIDE_MARK = re.compile(rb"\^[Xx][Zz]|~")
_SGD = re.compile(rb'! U1 (getvar|setvar|do) +"([^"\r\n]*)"(?: +"([^"\r\n]*)")?[ \r\n]')


class ZplStream(ReceiveBuffer):
    """Turns one connection's ZPL byte stream into printer events, whatever the TCP read boundaries.

    `feed()` appends bytes; `next_event(jobs_allowed)` returns the next complete event or None when
    more bytes are needed. With `jobs_allowed=False` it stops (returns `Blocked`) before the bytes
    of any format, so a printer whose receive buffer is full still answers host queries sent
    between formats while label data waits in the socket.
    """

    def next_event(self, jobs_allowed: bool = True) -> PrinterEvent | None:
        """The next event in stream order, `Blocked` when jobs are refused, None when bytes are short."""
        while True:
            if self._job is not None:
                if not jobs_allowed:
                    return Blocked()
                event, progressed = self._inside()
            else:
                event, progressed = self._outside(jobs_allowed)
            if event is not None:
                return event
            if not progressed:
                return None

    def _outside(self, jobs_allowed: bool) -> tuple[PrinterEvent | None, bool]:
        buffer = self._buffer
        match = _OUTSIDE_MARK.search(buffer, self._position)
        if match is None:
            # Bytes outside a format that start no command are ignored by the firmware.
            self._position = len(buffer)
            return None, False
        start = match.start()
        self._position = start
        mark = buffer[start : start + 1]
        if mark == b"!":
            return self._sgd(start)
        if len(buffer) - start < 3:
            return None, False
        if mark == b"~":
            self._position = start + 3
            return _tilde_event(bytes(buffer[start + 1 : start + 3]).upper()), True
        if bytes(buffer[start + 1 : start + 3]).upper() == b"XA":
            if not jobs_allowed:
                return Blocked(), False
            self._position = start + 3
            self._job = bytearray(buffer[start : start + 3])
            return JobStarted(), True
        # A format command outside ^XA..^XZ does nothing on a real printer.
        self._position = start + 1
        return None, True

    def _sgd(self, start: int) -> tuple[PrinterEvent | None, bool]:
        buffer = self._buffer
        match = _SGD.match(buffer, start)
        if match is not None:
            self._position = match.end()
            verb = match.group(1).decode()
            name = match.group(2).decode("utf-8", "replace")
            value = (match.group(3) or b"").decode("utf-8", "replace")
            if verb == "getvar":
                return PrinterQuery("sgd_getvar", name), True
            return PrinterCommand(f"sgd_{verb}", name, value), True
        window = buffer[start : start + _MAX_SGD_LINE]
        if b"\n" in window or len(window) >= _MAX_SGD_LINE:
            self._position = start + 1
            return None, True
        return None, False

    def _inside(self) -> tuple[PrinterEvent | None, bool]:
        assert self._job is not None
        buffer = self._buffer
        match = _INSIDE_MARK.search(buffer, self._position)
        if match is None:
            # Keep two bytes back: they may be the start of a ^XZ split across reads.
            keep_from = max(self._position, len(buffer) - 2)
            self._append_format(buffer[self._position : keep_from])
            self._position = keep_from
            return None, False
        start = match.start()
        if buffer[start : start + 1] == b"~":
            if len(buffer) - start < 3:
                self._append_format(buffer[self._position : start])
                self._position = start
                return None, False
            code = bytes(buffer[start + 1 : start + 3]).upper()
            if code in _IMMEDIATE_TILDE:
                self._append_format(buffer[self._position : start])
                self._position = start + 3
                return _tilde_event(code), True
            self._append_format(buffer[self._position : start + 1])
            self._position = start + 1
            return None, True
        end = match.end()
        self._append_format(buffer[self._position : end])
        self._position = end
        raw = bytes(self._job)
        self._job = None
        return JobComplete(raw), True

    def _append_format(self, chunk: bytes | bytearray) -> None:
        assert self._job is not None
        self._job += chunk
        if len(self._job) > MAX_FORMAT_BYTES:
            # Hostile or broken input: drop the runaway format rather than all of memory.
            self._job = None
            self.oversized_formats += 1


def _tilde_event(code: bytes) -> PrinterEvent | None:
    known = _IMMEDIATE_TILDE.get(code)
    if known is None:
        return None
    category, kind = known
    if category == "query":
        return PrinterQuery(kind)
    return PrinterCommand(kind)


# ^CI values to Python codecs. ^CI0..13 are code page 850 with national substitutions; the mock
# treats them as plain 850, which is what Latin text on a default-configured printer looks like.
_CODE_PAGES = {27: "cp1252", 28: "utf-8", 29: "utf-16-be", 30: "utf-16-le", 31: "cp1250", 33: "cp1251"}
_COMMAND = re.compile(rb"\^([A-Za-z@][A-Za-z0-9@])")


def decode_fields(raw: bytes) -> list[str]:
    """The text of each `^FD`/`^FV` field in a format, in order, as the printer would print it.

    `^FH` (hex indicator, `_` by default) makes `_XX` the byte 0xXX inside that field only;
    `^CI` picks how bytes become characters (`^CI28` is UTF-8). Raw CR and LF are ignored.
    """
    fields: list[str] = []
    encoding = "cp850"
    hex_indicator: bytes | None = None
    commands = list(_COMMAND.finditer(raw))
    for index, command in enumerate(commands):
        name = command.group(1).upper()
        end = commands[index + 1].start() if index + 1 < len(commands) else len(raw)
        parameter = raw[command.end() : end]
        if name == b"CI":
            encoding = _code_page(parameter, encoding)
        elif name == b"FH":
            indicator = parameter[:1]
            hex_indicator = indicator if indicator not in (b"", b"\r", b"\n", b",") else b"_"
        elif name in (b"FD", b"FV"):
            data = parameter.replace(b"\r", b"").replace(b"\n", b"")
            if hex_indicator is not None:
                data = _unhex(data, hex_indicator)
            fields.append(data.decode(encoding, "replace"))
        elif name == b"FS":
            hex_indicator = None
    return fields


def _code_page(parameter: bytes, current: str) -> str:
    digits = parameter.split(b",", 1)[0].strip()
    if not digits.isdigit():
        return current
    number = int(digits)
    if number <= 13:
        return "cp850"
    return _CODE_PAGES.get(number, current)


def _unhex(data: bytes, indicator: bytes) -> bytes:
    pattern = re.compile(re.escape(indicator) + rb"([0-9A-Fa-f]{2})")
    return pattern.sub(lambda match: bytes([int(match.group(1), 16)]), data)


@dataclass(frozen=True, slots=True)
class ZplStatus:
    """The printer state a ZPL status reply reports."""

    paper_out: bool = False
    paused: bool = False
    head_up: bool = False
    ribbon_out: bool = False
    buffer_full: bool = False
    partial_format: bool = False
    formats_waiting: int = 0
    label_length_dots: int = 1218
    thermal_transfer: bool = True


def _status_lines(status: ZplStatus) -> tuple[str, str, str]:
    def flag(value: bool) -> str:
        return "1" if value else "0"

    first = ",".join(
        [
            "030",
            flag(status.paper_out),
            flag(status.paused),
            f"{min(status.label_length_dots, 9999):04d}",
            f"{min(status.formats_waiting, 999):03d}",
            flag(status.buffer_full),
            "0",
            flag(status.partial_format),
            "000",
            "0",
            "0",
            "0",
        ]
    )
    second = ",".join(
        [
            "001",
            "0",
            flag(status.head_up),
            flag(status.ribbon_out),
            flag(status.thermal_transfer),
            "2",
            "6",
            "0",
            "00000000",
            "1",
            "000",
        ]
    )
    return first, second, "1234,0"


def host_status(status: ZplStatus) -> bytes:
    """The `~HS` reply: three `STX line ETX CR LF` strings."""
    return b"".join(STX + line.encode("ascii") + ETX + b"\r\n" for line in _status_lines(status))


def sgd_host_status(status: ZplStatus) -> str:
    """The value of SGD `device.host_status`: the `~HS` lines without STX/ETX, CR LF between them."""
    return "\r\n".join(_status_lines(status))


_DPI_BY_DOTS_PER_MM = {6: 152, 8: 203, 12: 300, 24: 600}


def host_identification(model: str, firmware: str, dots_per_mm: int = 8, memory_kb: int = 8192) -> bytes:
    """The `~HI` reply: model, firmware version, dots per millimetre and memory."""
    dpi = _DPI_BY_DOTS_PER_MM.get(dots_per_mm, round(dots_per_mm * 25.4))
    text = f"{model}-{dpi}dpi,{firmware},{dots_per_mm},{memory_kb}KB"
    return STX + text.encode("ascii", "replace") + ETX + b"\r\n"
