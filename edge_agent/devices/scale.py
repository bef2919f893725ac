"""What every scale driver offers, whatever protocol the scale speaks, and weights in grams.

The drivers import this interface; `scale_drivers.open_scale` picks one for a configured scale.
A driver is synchronous and owns its serial port; the agent never calls one from the pack path
but through a `ScaleReader`, whose thread keeps the latest reading. Every failure is a
`dockside.errors.ScaleError`; its type says what the reader does about it, its code (the wire
contract) says what happened:

    ScalePortLost       scale_unplugged            the port is gone or cannot be opened (reopened
                        scale_port_denied          with backoff); the port exists but this user
                                                   may not open it
    ScaleError          scale_not_answering        no complete frame in time
    ScaleGarbledFrame   scale_garbled_frame        bytes that are not a frame of the protocol
                                                   (the reader resynchronises)
    ScaleUnsettled      scale_unstable             the scale answered but the weight is moving
                        scale_busy                 the scale refused a command for now (moving,
                                                   taring)
    ScaleWithoutWeight  scale_overload / scale_underload
                        scale_fault                the scale reports an internal fault
                        scale_zero_out_of_range    zero or tare refused: the weight is outside
                                                   the allowed range
                        scale_unit_unsupported     a unit Dockside cannot turn into grams
    ScaleError          scale_command_rejected     the scale does not know the command (wrong
                                                   protocol set?)
                        scale_command_unsupported  the protocol has no such command (zero on a
                                                   continuous scale)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

from dockside.errors import ScaleGarbledFrame, ScaleWithoutWeight

from .config import ScaleConfig

__all__ = [
    "PROTOCOL_NAMES",
    "Scale",
    "WeightReading",
    "grams_from",
    "reading",
]

# How each protocol is called on the scale's menu and in messages.
PROTOCOL_NAMES = {
    "mt-sics": "MT-SICS",
    "toledo-8217": "Toledo 8217",
    "nci-scp12": "NCI SCP-12",
    "cas": "CAS",
}

# Grams per unit, exact where the definition is exact (the pound is 453.59237 g by law).
_GRAMS_PER_UNIT = {
    "g": Decimal(1),
    "kg": Decimal(1000),
    "mg": Decimal("0.001"),
    "t": Decimal(1_000_000),
    "ct": Decimal("0.2"),
    "lb": Decimal("453.59237"),
    "oz": Decimal("28.349523125"),
}
# Far beyond any parcel scale: a reading past it is a garbled frame, not a weight.
_MAX_GRAMS = 10_000_000_000


@dataclass(frozen=True)
class WeightReading:
    """One weight from the scale: whole grams, whether the scale called it stable, and when."""

    grams: int
    stable: bool
    at: float  # time.monotonic() when it was read


def reading(grams: int, stable: bool) -> WeightReading:
    """A reading taken now."""
    return WeightReading(grams=grams, stable=stable, at=time.monotonic())


def grams_from(value: str, unit: str) -> int:
    """A weight as the scale wrote it ("-1.250", "kg") in whole grams; raises ScaleError otherwise."""
    factor = _GRAMS_PER_UNIT.get(unit.strip().lower())
    if factor is None:
        raise ScaleWithoutWeight(
            f"the scale reports weight in {unit.strip()[:8]!r}, which Dockside cannot convert: "
            "set the scale to g, kg, lb or oz",
            code="scale_unit_unsupported",
        )
    text = value.replace(" ", "")
    if not text or len(text) > 20 or not all(c in "+-.0123456789" for c in text):
        raise ScaleGarbledFrame(f"the scale sent {value[:24]!r} as a weight")
    try:
        grams = (Decimal(text) * factor).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ScaleGarbledFrame(f"the scale sent {value[:24]!r} as a weight") from exc
    if abs(grams) > _MAX_GRAMS:
        raise ScaleGarbledFrame(f"the scale sent {value[:24]!r} {unit[:8]} as a weight")
    return int(grams)


@runtime_checkable
class Scale(Protocol):
    """A scale on a serial port, driven synchronously by one thread."""

    config: ScaleConfig

    def open(self) -> None:
        """Open the serial port; raises ScaleError (scale_unplugged, scale_port_denied)."""

    def read(self) -> WeightReading:
        """The current weight; raises ScaleError when there is none (see the codes above)."""
        ...

    def zero(self) -> None:
        """Set the empty scale to zero."""

    def tare(self) -> None:
        """Take what is on the scale (a box, a tote) as tare."""

    def close(self) -> None:
        """Release the serial port."""
