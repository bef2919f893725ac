"""What the Toledo 8217 and NCI SCP-12 drivers share: letter commands, a weight or status bits back.

Both protocols ask with a letter on a 9600 baud 7E1 line (`W` weigh, `Z` zero, `T` tare) and
answer with a frame that holds a weight as text (` 1.25lb`), or status bits saying why there is
none: moving, over capacity, under zero. Shared here: the weight text, what the status means
(`ScaleStatus`), the errors both raise with the same words, and the driver that asks and reads.
Each protocol module keeps its own frame shape and status bit layout, and what its replies
leave out (the 8217 sends no unit for pounds and no weight while moving; an NCI status comes
after every weight and can report an internal fault).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from dockside.errors import ScaleError, ScaleGarbledFrame, ScaleUnsettled, ScaleWithoutWeight

from .config import ScaleConfig
from .scale import WeightReading, reading
from .serial_line import SerialLine

__all__ = ["DEFAULT_BAUDRATE", "LetterCommandScale", "LetterProtocol", "ScaleStatus", "split_weight"]

DEFAULT_BAUDRATE = 9600
# A sign, a number and a unit of one or two letters (none: the protocol's default unit).
_WEIGHT = re.compile(r" *(?P<sign>-)? *(?P<value>[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *(?P<unit>[A-Za-z]{1,2})? *")

_NO_ZERO = "the scale could not find zero: empty the platform and press ZERO on the scale"


def split_weight(text: str) -> tuple[str, str | None] | None:
    """The signed number and the unit (None when the scale sent none) of a weight record's text."""
    match = _WEIGHT.fullmatch(text)
    if match is None:
        return None
    return (match["sign"] or "") + match["value"], match["unit"]


@dataclass(frozen=True)
class LetterProtocol:
    """How one protocol names itself in messages and frames its commands and replies."""

    scale_name: str  # "NCI scale"
    menu_setting: str  # what the scale's protocol menu must say: "NCI (SCP-12)"
    command_end: bytes  # after the letter: CR for NCI, nothing for the 8217
    terminator: bytes  # the last byte of a reply
    shown_bytes: int  # how much of a garbled frame a message quotes

    def garbled(self, frame: bytes, why: str) -> ScaleGarbledFrame:
        """The error for a frame that is not one of this protocol's."""
        return ScaleGarbledFrame(
            f"the {self.scale_name} sent {frame[: self.shown_bytes]!r}, {why}: check that the scale "
            f"is set to {self.menu_setting} and 9600 baud 7E1"
        )

    def rejected(self) -> ScaleError:
        """The error for the reply `?`: the scale did not understand the command."""
        return ScaleError(
            f"the {self.scale_name} did not understand the command: check that it is set to "
            f"{self.menu_setting}",
            code="scale_command_rejected",
        )


@dataclass(frozen=True)
class ScaleStatus:
    """What a reply's status bits say, in the words both protocols share."""

    moving: bool = False
    overload: bool = False
    underload: bool = False
    fault: bool = False  # memory or calibration (NCI)
    outside_zero_range: bool = False  # zero capture failed (8217)

    def refusal(self) -> ScaleWithoutWeight | None:
        """Why the scale can give no weight however long one waits, or None."""
        if self.overload:
            return ScaleWithoutWeight(
                "the scale is overloaded: take the parcel off, it is heavier than the scale can weigh",
                code="scale_overload",
            )
        if self.underload:
            return ScaleWithoutWeight(
                "the scale reads below zero: empty the scale and press zero", code="scale_underload"
            )
        if self.fault:
            return ScaleWithoutWeight(
                "the scale reports an internal fault (memory or calibration): switch it off and on; "
                "if it stays, call for service",
                code="scale_fault",
            )
        return None

    def without_weight(self) -> ScaleError:
        """The error for a reply that carries this status and no weight."""
        refusal = self.refusal()
        if refusal is not None:
            return refusal
        if self.moving:
            return ScaleUnsettled("the weight is moving: keep the parcel still", code="scale_unstable")
        if self.outside_zero_range:
            return ScaleWithoutWeight(_NO_ZERO, code="scale_zero_out_of_range")
        return ScaleUnsettled("the scale sent its status but no weight: weigh again", code="scale_busy")

    def check_command(self, action: str) -> None:
        """Raise why the scale did not `action` ("zero", "tare"), if this status says it did not."""
        refusal = self.refusal()
        if refusal is None and self.moving:
            raise ScaleUnsettled(
                f"the scale could not {action}: the weight is moving; keep it still and try again",
                code="scale_busy",
                params={"action": action},
            )
        reason = refusal.message if refusal is not None else _NO_ZERO if self.outside_zero_range else None
        if reason is not None:
            raise ScaleWithoutWeight(
                f"the scale refused to {action}: {reason}",
                code="scale_zero_out_of_range",
                params={"action": action},
            )


class LetterCommandScale:
    """A scale asked with letters on a 7E1 serial line; a protocol module says how its frames read."""

    PROTOCOL: ClassVar[LetterProtocol]

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
            scale_name=self.PROTOCOL.scale_name,
        )

    def weight_of(self, frame: bytes) -> tuple[int, bool]:
        """Grams and stability from the reply to `W`; ScaleError when it holds no usable weight."""
        raise NotImplementedError

    def status_of(self, frame: bytes) -> ScaleStatus | None:
        """The status a reply to `Z` or `T` carries; None when it is a weight (the command was done)."""
        raise NotImplementedError

    def open(self) -> None:
        self._line.open()

    def _ask(self, command: bytes, timeout_s: float) -> bytes:
        self._line.discard_input()
        self._line.write(command + self.PROTOCOL.command_end)
        return self._line.read_frame(self.PROTOCOL.terminator, timeout_s)

    def read(self) -> WeightReading:
        grams, stable = self.weight_of(self._ask(b"W", self._read_timeout_s))
        return reading(grams, stable)

    def _command(self, command: bytes, action: str) -> None:
        status = self.status_of(self._ask(command, self._command_timeout_s))
        if status is not None:
            status.check_command(action)

    def zero(self) -> None:
        self._command(b"Z", "zero")

    def tare(self) -> None:
        self._command(b"T", "tare")

    def close(self) -> None:
        self._line.close()
