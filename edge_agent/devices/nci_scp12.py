"""The driver for NCI / Avery Weigh-Tronix scales speaking SCP-12 (the NCI standard, 9600 7E1).

Commands are a letter and CR (`W` weigh, `S` status, `Z` zero, `T` tare). A reply is one or two
LF..CR records and an ETX: `LF weight unit CR` (only with `W`) then `LF status CR ETX`. The
status is two or three bytes with bits 4 and 5 always set:

    byte 1: bit 0 motion, bit 1 at zero, bit 2 RAM error, bit 3 EEPROM error
    byte 2: bit 0 under capacity, bit 1 over capacity, bit 2 ROM error, bit 3 faulty calibration
    byte 3 (optional): bits 0-1 range, bit 2 net weight, bit 3 initial zero error

`LF ? CR ETX` means the command was not understood. Bytes are masked to 7 bits (parity).
`parse_nci_reply` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockside.errors import ScaleError

from .config import ScaleConfig
from .scale import WeightReading, grams_from, reading
from .serial_line import SerialLine

__all__ = ["NciReply", "NciScp12Scale", "parse_nci_reply", "weight_from_nci"]

DEFAULT_BAUDRATE = 9600
TERMINATOR = b"\x03"
_RECORD = re.compile(rb"\n([^\n\r]*)\r")
_WEIGHT = re.compile(r" *(?P<sign>-)? *(?P<value>[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?P<unit>[A-Za-z]{1,2}) *")
MOTION, AT_ZERO, RAM_ERROR, EEPROM_ERROR = 1, 2, 4, 8
UNDER_CAPACITY, OVER_CAPACITY, ROM_ERROR, BAD_CALIBRATION = 1, 2, 4, 8


@dataclass(frozen=True)
class NciReply:
    """The status bytes of a reply and, after `W`, the weight record's text."""

    status: bytes
    weight: str | None = None


def _garbled(frame: bytes, why: str) -> ScaleError:
    return ScaleError(
        f"the NCI scale sent {frame[:32]!r}, {why}: check that the scale is set to NCI (SCP-12) "
        "and 9600 baud 7E1",
        code="scale_garbled_frame",
    )


def parse_nci_reply(frame: bytes) -> NciReply:
    """The records of one reply (up to ETX, bytes already 7-bit); raises ScaleError on anything else."""
    records = _RECORD.findall(frame)
    if not records:
        raise _garbled(frame, "which has no LF..CR record")
    status = records[-1]
    if status == b"?":
        raise ScaleError(
            "the NCI scale did not understand the command: check that it is set to NCI (SCP-12)",
            code="scale_command_rejected",
        )
    if not 2 <= len(status) <= 4 or any(b & 0x30 != 0x30 or b > 0x7F for b in status):
        raise _garbled(frame, "whose last record is not a status")
    weight = None
    if len(records) >= 2:
        try:
            weight = records[-2].decode("ascii")
        except UnicodeDecodeError as exc:
            raise _garbled(frame, "whose weight is not text") from exc
    return NciReply(status=bytes(status), weight=weight)


def _status_error(status: bytes) -> ScaleError | None:
    first, second = status[0], status[1]
    if second & OVER_CAPACITY:
        return ScaleError(
            "the scale is overloaded: take the parcel off, it is heavier than the scale can weigh",
            code="scale_overload",
        )
    if second & UNDER_CAPACITY:
        return ScaleError(
            "the scale reads below zero: empty the scale and press zero", code="scale_underload"
        )
    if first & (RAM_ERROR | EEPROM_ERROR) or second & (ROM_ERROR | BAD_CALIBRATION):
        return ScaleError(
            "the scale reports an internal fault (memory or calibration): switch it off and on; "
            "if it stays, call for service",
            code="scale_fault",
        )
    return None


def weight_from_nci(reply: NciReply) -> tuple[int, bool]:
    """Grams and stability from the reply to `W`; ScaleError when it holds no usable weight."""
    error = _status_error(reply.status)
    if error is not None:
        raise error
    moving = bool(reply.status[0] & MOTION)
    if reply.weight is None:
        if moving:
            raise ScaleError("the weight is moving: keep the parcel still", code="scale_unstable")
        raise ScaleError("the scale sent its status but no weight: weigh again", code="scale_busy")
    match = _WEIGHT.fullmatch(reply.weight)
    if match is None:
        raise _garbled(reply.weight.encode(), "which is not a weight")
    return grams_from((match["sign"] or "") + match["value"], match["unit"]), not moving


class NciScp12Scale:
    """An NCI (SCP-12) scale on a serial port."""

    def __init__(
        self, config: ScaleConfig, *, read_timeout_s: float = 1.0, command_timeout_s: float = 3.0
    ) -> None:
        self.config = config
        self._read_timeout_s = read_timeout_s
        self._command_timeout_s = command_timeout_s
        self._line = SerialLine(
            config.port, baudrate=config.baudrate or DEFAULT_BAUDRATE, seven_bit=True, scale_name="NCI scale"
        )

    def open(self) -> None:
        self._line.open()

    def _ask(self, command: bytes, timeout_s: float) -> NciReply:
        self._line.discard_input()
        self._line.write(command + b"\r")
        return parse_nci_reply(self._line.read_frame(TERMINATOR, timeout_s))

    def read(self) -> WeightReading:
        grams, stable = weight_from_nci(self._ask(b"W", self._read_timeout_s))
        return reading(grams, stable)

    def _command(self, command: bytes, action: str) -> None:
        reply = self._ask(command, self._command_timeout_s)
        error = _status_error(reply.status)
        if error is not None:
            raise ScaleError(
                f"the scale refused to {action}: {error.message}", code="scale_zero_out_of_range"
            )
        if reply.status[0] & MOTION:
            raise ScaleError(
                f"the scale could not {action}: the weight is moving; keep it still and try again",
                code="scale_busy",
            )

    def zero(self) -> None:
        self._command(b"Z", "zero")

    def tare(self) -> None:
        self._command(b"T", "tare")

    def close(self) -> None:
        self._line.close()
