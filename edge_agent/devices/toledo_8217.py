"""The driver for scales in Toledo 8217 mode (9600 7E1): `W` weighs, `Z` zeros, `T` tares.

Commands are single letters. A stable weight comes back as `STX weight [unit] CR` (the 8217's
US heritage: no unit means pounds); when there is no valid weight (moving, overload, below zero)
the scale sends `STX ? status CR`, one status byte whose bits are

    bit 0 motion   bit 1 over capacity   bit 2 under zero   bit 3 outside zero capture range
    bit 4 center of zero   bits 5 and 6 always 1   bit 7 parity

Bytes are masked to 7 bits: on a pty (and some USB adapters) parity is not stripped.
`parse_8217_reply` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockside.errors import ScaleError

from .config import ScaleConfig
from .scale import WeightReading, grams_from, reading
from .serial_line import SerialLine

__all__ = ["Toledo8217Reply", "Toledo8217Scale", "parse_8217_reply", "weight_from_8217"]

DEFAULT_BAUDRATE = 9600
STX, TERMINATOR = b"\x02", b"\r"
MOTION, OVER_CAPACITY, UNDER_ZERO, OUTSIDE_ZERO_RANGE, CENTER_OF_ZERO = 1, 2, 4, 8, 16
_ALWAYS_SET = 0x60
_WEIGHT = re.compile(r" *(?P<sign>-)? *(?P<value>[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?P<unit>[A-Za-z]{1,2})? *")


@dataclass(frozen=True)
class Toledo8217Reply:
    """A weight record (value and unit, unit None for pounds) or a status record (status byte)."""

    value: str | None = None
    unit: str | None = None
    status: int | None = None


def _garbled(frame: bytes, why: str) -> ScaleError:
    return ScaleError(
        f"the Toledo 8217 scale sent {frame[:24]!r}, {why}: check that the scale is set to 8217 "
        "and 9600 baud 7E1",
        code="scale_garbled_frame",
    )


def parse_8217_reply(frame: bytes) -> Toledo8217Reply:
    """The record in one frame (up to CR, bytes already 7-bit); raises ScaleError on anything else."""
    start = frame.rfind(STX)
    if start < 0:
        raise _garbled(frame, "which has no STX")
    body = frame[start + 1 :].removesuffix(TERMINATOR)
    if body.startswith(b"?"):
        if len(body) == 1:
            raise ScaleError(
                "the Toledo 8217 scale did not understand the command: check that it is set to 8217",
                code="scale_command_rejected",
            )
        if len(body) != 2 or body[1] & _ALWAYS_SET != _ALWAYS_SET or body[1] > 0x7F:
            raise _garbled(frame, "which is not a status record")
        return Toledo8217Reply(status=body[1])
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise _garbled(frame, "which is not text") from exc
    match = _WEIGHT.fullmatch(text)
    if match is None:
        raise _garbled(frame, "which is not a weight record")
    return Toledo8217Reply(value=(match["sign"] or "") + match["value"], unit=match["unit"])


def _status_error(status: int) -> ScaleError | None:
    if status & OVER_CAPACITY:
        return ScaleError(
            "the scale is overloaded: take the parcel off, it is heavier than the scale can weigh",
            code="scale_overload",
        )
    if status & UNDER_ZERO:
        return ScaleError(
            "the scale reads below zero: empty the scale and press zero", code="scale_underload"
        )
    if status & MOTION:
        return ScaleError("the weight is moving: keep the parcel still", code="scale_unstable")
    if status & OUTSIDE_ZERO_RANGE:
        return ScaleError(
            "the scale could not find zero: empty the platform and press ZERO on the scale",
            code="scale_zero_out_of_range",
        )
    return None


def weight_from_8217(reply: Toledo8217Reply) -> tuple[int, bool]:
    """Grams and stability of a weight record (always stable: the 8217 sends none while moving)."""
    if reply.status is not None:
        error = _status_error(reply.status)
        raise error or ScaleError("the scale sent its status but no weight: weigh again", code="scale_busy")
    assert reply.value is not None
    return grams_from(reply.value, reply.unit or "lb"), True


class Toledo8217Scale:
    """A scale in Toledo 8217 mode on a serial port."""

    def __init__(
        self, config: ScaleConfig, *, read_timeout_s: float = 1.0, command_timeout_s: float = 3.0
    ) -> None:
        self.config = config
        self._read_timeout_s = read_timeout_s
        self._command_timeout_s = command_timeout_s
        self._line = SerialLine(
            config.port,
            baudrate=config.baudrate or DEFAULT_BAUDRATE,
            seven_bit=True,
            scale_name="Toledo 8217 scale",
        )

    def open(self) -> None:
        self._line.open()

    def _ask(self, command: bytes, timeout_s: float) -> Toledo8217Reply:
        self._line.discard_input()
        self._line.write(command)
        return parse_8217_reply(self._line.read_frame(TERMINATOR, timeout_s))

    def read(self) -> WeightReading:
        grams, stable = weight_from_8217(self._ask(b"W", self._read_timeout_s))
        return reading(grams, stable)

    def _command(self, command: bytes, action: str) -> None:
        reply = self._ask(command, self._command_timeout_s)
        if reply.status is None:
            return  # some 8217 scales answer a tare with the new net weight
        error = _status_error(reply.status)
        if error is None:
            return
        if error.code == "scale_unstable":
            raise ScaleError(
                f"the scale could not {action}: the weight is moving; keep it still and try again",
                code="scale_busy",
            )
        raise ScaleError(f"the scale refused to {action}: {error.message}", code="scale_zero_out_of_range")

    def zero(self) -> None:
        self._command(b"Z", "zero")

    def tare(self) -> None:
        self._command(b"T", "tare")

    def close(self) -> None:
        self._line.close()
