"""The driver for scales in Toledo 8217 mode (9600 7E1): `W` weighs, `Z` zeros, `T` tares.

Commands are single letters. A stable weight comes back as `STX weight [unit] CR` (the 8217's
US heritage: no unit means pounds); when there is no valid weight (moving, overload, below zero)
the scale sends `STX ? status CR`, one status byte whose bits are

    bit 0 motion   bit 1 over capacity   bit 2 under zero   bit 3 outside zero capture range
    bit 4 center of zero   bits 5 and 6 always 1   bit 7 parity

Bytes are masked to 7 bits: on a pty (and some USB adapters) parity is not stripped.
`parse_8217_reply` is a pure function; what the 8217 shares with NCI SCP-12 (letter commands,
the weight text, the status meanings, the driver) is in `letter_command_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .letter_command_scale import LetterCommandScale, LetterProtocol, ScaleStatus, split_weight
from .scale import grams_from

__all__ = ["Toledo8217Reply", "Toledo8217Scale", "parse_8217_reply", "weight_from_8217"]

STX, TERMINATOR = b"\x02", b"\r"
MOTION, OVER_CAPACITY, UNDER_ZERO, OUTSIDE_ZERO_RANGE, CENTER_OF_ZERO = 1, 2, 4, 8, 16
_ALWAYS_SET = 0x60
TOLEDO_8217 = LetterProtocol(
    "Toledo 8217 scale", "8217", command_end=b"", terminator=TERMINATOR, shown_bytes=24
)


@dataclass(frozen=True)
class Toledo8217Reply:
    """A weight record (value and unit, unit None for pounds) or a status record (status byte)."""

    value: str | None = None
    unit: str | None = None
    status: int | None = None

    def scale_status(self) -> ScaleStatus | None:
        """What a status record says; None for a weight record."""
        if self.status is None:
            return None
        return ScaleStatus(
            moving=bool(self.status & MOTION),
            overload=bool(self.status & OVER_CAPACITY),
            underload=bool(self.status & UNDER_ZERO),
            outside_zero_range=bool(self.status & OUTSIDE_ZERO_RANGE),
        )


def parse_8217_reply(frame: bytes) -> Toledo8217Reply:
    """The record in one frame (up to CR, bytes already 7-bit); raises ScaleError on anything else."""
    start = frame.rfind(STX)
    if start < 0:
        raise TOLEDO_8217.garbled(frame, "which has no STX")
    body = frame[start + 1 :].removesuffix(TERMINATOR)
    if body.startswith(b"?"):
        if len(body) == 1:
            raise TOLEDO_8217.rejected()
        if len(body) != 2 or body[1] & _ALWAYS_SET != _ALWAYS_SET or body[1] > 0x7F:
            raise TOLEDO_8217.garbled(frame, "which is not a status record")
        return Toledo8217Reply(status=body[1])
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TOLEDO_8217.garbled(frame, "which is not text") from exc
    weight = split_weight(text)
    if weight is None:
        raise TOLEDO_8217.garbled(frame, "which is not a weight record")
    return Toledo8217Reply(value=weight[0], unit=weight[1])


def weight_from_8217(reply: Toledo8217Reply) -> tuple[int, bool]:
    """Grams and stability of a weight record (always stable: the 8217 sends none while moving)."""
    status = reply.scale_status()
    if status is not None:
        raise status.without_weight()
    assert reply.value is not None
    return grams_from(reply.value, reply.unit or "lb"), True


class Toledo8217Scale(LetterCommandScale):
    """A scale in Toledo 8217 mode on a serial port."""

    PROTOCOL = TOLEDO_8217

    def weight_of(self, frame: bytes) -> tuple[int, bool]:
        return weight_from_8217(parse_8217_reply(frame))

    def status_of(self, frame: bytes) -> ScaleStatus | None:
        # Some 8217 scales answer a tare with the new net weight: no status, the command was done.
        return parse_8217_reply(frame).scale_status()
