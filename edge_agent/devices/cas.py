"""The driver for CAS scales in continuous output mode: the scale streams, the driver listens.

Each line is `ST,GS,+0001.234kg CR LF` (the 18-byte form) or `ST,GS,<id><lamp>,   1.234 kg CR LF`
(the 22-byte form, with a device id and a lamp byte): stable `ST` / unstable `US` / overload `OL`,
gross `GS` / net `NT`, then the weight and its unit. Only the newest line is the weight; older
buffered lines are skipped. The continuous protocol takes no commands, so zero and tare are done
on the scale's keys. `parse_cas_line` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockside.errors import ScaleError, ScaleGarbledFrame, ScaleWithoutWeight

from .config import ScaleConfig
from .scale import WeightReading, grams_from, reading
from .serial_line import SerialLine

__all__ = ["CasLine", "CasScale", "parse_cas_line", "weight_from_cas"]

DEFAULT_BAUDRATE = 9600
TERMINATOR = b"\n"
_WEIGHT = re.compile(r" *(?P<sign>[+-])? *(?P<value>[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?P<unit>[A-Za-z]{1,2}) *")
_STATES = {b"ST": "stable", b"US": "unstable", b"OL": "overload"}
_MODES = {b"GS": "gross", b"NT": "net"}


@dataclass(frozen=True)
class CasLine:
    """One line of the stream: state (stable, unstable, overload), gross or net, weight text."""

    state: str
    mode: str
    weight: str


def _garbled(frame: bytes, why: str) -> ScaleGarbledFrame:
    return ScaleGarbledFrame(
        f"the CAS scale sent {frame[:32]!r}, {why}: check that the scale streams the CAS format "
        "at the station's baud rate"
    )


def parse_cas_line(frame: bytes) -> CasLine:
    """The parts of one line (CR LF optional); raises ScaleError on anything else."""
    parts = frame.rstrip(b"\r\n").split(b",")
    if len(parts) not in (3, 4):
        raise _garbled(frame, "which is not a CAS line")
    state, mode = _STATES.get(parts[0].strip()), _MODES.get(parts[1].strip())
    if state is None or mode is None:
        raise _garbled(frame, "which does not start with ST/US/OL and GS/NT")
    if len(parts) == 4 and len(parts[2]) > 2:  # device id and lamp byte
        raise _garbled(frame, "whose device field is too long")
    try:
        weight = parts[-1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise _garbled(frame, "whose weight is not text") from exc
    return CasLine(state=state, mode=mode, weight=weight)


def weight_from_cas(line: CasLine) -> tuple[int, bool]:
    """Grams and stability of a line; ScaleError on overload or a weight that is not one."""
    if line.state == "overload":
        if line.weight.strip().startswith("-"):
            raise ScaleWithoutWeight(
                "the scale reads below zero: empty the scale and press zero", code="scale_underload"
            )
        raise ScaleWithoutWeight(
            "the scale is overloaded: take the parcel off, it is heavier than the scale can weigh",
            code="scale_overload",
        )
    match = _WEIGHT.fullmatch(line.weight)
    if match is None:
        raise _garbled(line.weight.encode(), "which is not a weight")
    return grams_from((match["sign"] or "") + match["value"], match["unit"]), line.state == "stable"


class CasScale:
    """A CAS scale streaming its weight on a serial port."""

    def __init__(self, config: ScaleConfig, *, read_timeout_s: float = 1.0) -> None:
        self.config = config
        self._read_timeout_s = read_timeout_s
        self._line = SerialLine(
            config.port, baudrate=config.baudrate or DEFAULT_BAUDRATE, scale_name="CAS scale"
        )

    def open(self) -> None:
        self._line.open()

    def read(self) -> WeightReading:
        frame = self._line.read_latest_frame(TERMINATOR, self._read_timeout_s)
        grams, stable = weight_from_cas(parse_cas_line(frame))
        return reading(grams, stable)

    def _unsupported(self, action: str) -> ScaleError:
        return ScaleError(
            f"a CAS scale in continuous mode takes no commands: press {action.upper()} on the scale itself",
            code="scale_command_unsupported",
        )

    def zero(self) -> None:
        raise self._unsupported("zero")

    def tare(self) -> None:
        raise self._unsupported("tare")

    def close(self) -> None:
        self._line.close()
