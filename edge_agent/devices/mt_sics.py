"""The driver for Mettler Toledo scales speaking MT-SICS: `SI` to weigh, `Z` to zero, `T`/`TAC` to tare.

MT-SICS is line based (9600 8N1, CR LF): every command gets one reply line made of the command
name, a status letter and, for weights, a value and a unit, e.g. `S S      1.250 kg`. Status `S`
is stable, `D` dynamic (moving), `I` busy, `+`/`-` over/underload; `ES`/`ET`/`EL` are the
scale's syntax, transmission and logical errors. `parse_sics_reply` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockside.errors import ScaleError, ScaleGarbledFrame, ScaleUnsettled, ScaleWithoutWeight

from .config import ScaleConfig
from .scale import WeightReading, grams_from, reading
from .serial_line import SerialLine

__all__ = ["MtSicsScale", "SicsReply", "parse_sics_reply", "weight_from_sics"]

DEFAULT_BAUDRATE = 9600
TERMINATOR = b"\r\n"
_REPLY = re.compile(
    r"(?P<command>[A-Z][A-Z0-9]{0,3}) +(?P<status>[A-Z+-])"
    r"(?: +(?P<value>[+-]? *[0-9]*\.?[0-9]+) +(?P<unit>[A-Za-z%]{1,4}))? *"
)
# The scale's own error replies: what to do, the error type and its code.
_SCALE_ERRORS: dict[str, tuple[str, type[ScaleError], str]] = {
    "ES": (
        "did not understand the command: check that it is set to MT-SICS",
        ScaleError,
        "scale_command_rejected",
    ),
    "ET": (
        "received a garbled command: check the cable and the baud rate",
        ScaleGarbledFrame,
        "scale_garbled_frame",
    ),
    "EL": (
        "could not carry out the command (logical error): check its display",
        ScaleError,
        "scale_command_rejected",
    ),
}


@dataclass(frozen=True)
class SicsReply:
    """One MT-SICS reply line, split into its parts (value and unit only when a weight came)."""

    command: str
    status: str
    value: str | None = None
    unit: str | None = None


def parse_sics_reply(line: bytes) -> SicsReply:
    """The parts of one reply line (CR LF optional); raises ScaleError on anything else."""
    try:
        text = line.removesuffix(TERMINATOR).decode("ascii")
    except UnicodeDecodeError as exc:
        raise ScaleGarbledFrame(
            f"the MT-SICS scale sent non-text bytes {line[:24]!r}: check the baud rate (MT-SICS is 9600 8N1)",
        ) from exc
    if text in _SCALE_ERRORS:
        return SicsReply(command=text, status="")
    match = _REPLY.fullmatch(text)
    if match is None:
        raise ScaleGarbledFrame(
            f"the MT-SICS scale sent {text[:40]!r}, which is not an MT-SICS reply: "
            "check that the scale is set to MT-SICS",
        )
    return SicsReply(match["command"], match["status"], value=match["value"], unit=match["unit"])


def _check_error(reply: SicsReply) -> None:
    if reply.command in _SCALE_ERRORS:
        advice, error, code = _SCALE_ERRORS[reply.command]
        raise error(f"the MT-SICS scale {advice}", code=code)


def weight_from_sics(reply: SicsReply) -> tuple[int, bool]:
    """Grams and stability from the reply to `S` or `SI`; ScaleError when it holds no weight."""
    _check_error(reply)
    if reply.command != "S":
        raise ScaleGarbledFrame(
            f"the MT-SICS scale answered a weight request with {reply.command!r}: a reply to "
            "an earlier command arrived late; the next reading will be right",
        )
    if reply.status == "+":
        raise ScaleWithoutWeight(
            "the scale is overloaded: take the parcel off, it is heavier than the scale can weigh",
            code="scale_overload",
        )
    if reply.status == "-":
        raise ScaleWithoutWeight(
            "the scale reads below zero: empty the scale and press zero",
            code="scale_underload",
        )
    if reply.status == "I":
        raise ScaleUnsettled(
            "the scale is busy (zeroing or taring) and gave no weight: wait a moment",
            code="scale_busy",
        )
    if reply.status not in ("S", "D") or reply.value is None or reply.unit is None:
        raise ScaleGarbledFrame(
            f"the MT-SICS scale sent status {reply.status!r} without a weight: "
            "check that it is set to MT-SICS",
        )
    return grams_from(reply.value, reply.unit), reply.status == "S"


def _expect(reply: SicsReply, command: str, done: str, action: str) -> None:
    """Raise the right ScaleError unless `reply` says `command` was done."""
    _check_error(reply)
    if reply.command != command:
        raise ScaleGarbledFrame(
            f"the MT-SICS scale answered {command} with {reply.command!r}: try to {action} again",
        )
    if reply.status in done:
        return
    if reply.status == "I":
        raise ScaleUnsettled(
            f"the scale could not {action} now (the weight is moving or it is busy): "
            "keep the platform still and try again",
            code="scale_busy",
            params={"action": action},
        )
    if reply.status in ("+", "-"):
        raise ScaleWithoutWeight(
            f"the scale refused to {action}: the weight is outside the range it may {action} "
            "(empty the platform first)",
            code="scale_zero_out_of_range",
            params={"action": action},
        )
    raise ScaleError(
        f"the MT-SICS scale answered {command} with status {reply.status!r}: try to {action} again",
        code="scale_command_rejected",
        params={"action": action},
    )


class MtSicsScale:
    """A Mettler Toledo scale (MT-SICS level 0/1) on a serial port."""

    def __init__(
        self,
        config: ScaleConfig,
        *,
        read_timeout_s: float = 1.0,
        command_timeout_s: float = 5.0,
    ) -> None:
        self.config = config
        self._read_timeout_s = read_timeout_s
        # Z and T wait for a stable weight inside the scale before answering.
        self._command_timeout_s = command_timeout_s
        self._line = SerialLine(
            config.port, baudrate=config.baudrate or DEFAULT_BAUDRATE, scale_name="MT-SICS scale"
        )

    def open(self) -> None:
        self._line.open()

    def _ask(self, command: bytes, timeout_s: float) -> SicsReply:
        self._line.discard_input()
        self._line.write(command + TERMINATOR)
        return parse_sics_reply(self._line.read_frame(TERMINATOR, timeout_s))

    def read(self) -> WeightReading:
        grams, stable = weight_from_sics(self._ask(b"SI", self._read_timeout_s))
        return reading(grams, stable)

    def zero(self) -> None:
        _expect(self._ask(b"Z", self._command_timeout_s), "Z", "A", "zero")

    def tare(self) -> None:
        _expect(self._ask(b"T", self._command_timeout_s), "T", "S", "tare")

    def clear_tare(self) -> None:
        """Forget the tare (`TAC`)."""
        _expect(self._ask(b"TAC", self._command_timeout_s), "TAC", "A", "clear the tare")

    def close(self) -> None:
        self._line.close()
