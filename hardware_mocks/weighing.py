"""The physical side of a mock scale: what lies on the platform, zero, tare, stability and limits.

Every scale protocol reads the same `Weighing`, so zeroing or taring over the serial line changes
later readings the way it does on a real scale: the displayed gross weight is the load minus the
zero point, the net weight is gross minus tare. Zero is only accepted while stable and within the
zero setting range (2 % of capacity around the power-on zero, a common legal-for-trade setting);
tare only while stable and within 0..capacity. Zeroing clears the tare.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["GRAMS_PER_UNIT", "Reading", "Weighing"]

GRAMS_PER_UNIT = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "oz": 28.349523125}


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at the scale, in grams."""

    gross_g: float
    net_g: float
    tare_g: float
    stable: bool
    overload: bool
    underload: bool

    @property
    def at_zero(self) -> bool:
        """Center of zero: the gross weight is within a quarter of a gram of zero."""
        return abs(self.gross_g) < 0.25

    @property
    def net_mode(self) -> bool:
        """Whether a tare is in force (the scale shows net weight)."""
        return self.tare_g != 0

    def net_in(self, unit: str) -> float:
        """The net weight in a unit."""
        return self.net_g / GRAMS_PER_UNIT[unit]


class Weighing:
    """The load on the platform and what the scale's zero and tare make of it."""

    def __init__(self, capacity_g: float = 30000.0, zero_range_fraction: float = 0.02) -> None:
        self.capacity_g = capacity_g
        self.zero_range_g = capacity_g * zero_range_fraction
        self.load_g = 0.0
        self.stable = True
        self.swing = False
        self.overload = False
        self.underload = False
        self.zero_offset_g = 0.0
        self.tare_g = 0.0

    def put(self, grams: float, stable: bool = True) -> None:
        """Place a load (the total on the platform, in grams); `stable=False` while it settles."""
        self.load_g = float(grams)
        self.stable = stable

    def reading(self, now: float | None = None) -> Reading:
        """What the scale measures now."""
        gross = self.load_g - self.zero_offset_g
        stable = self.stable
        if self.swing:
            # A parcel rocking on the platform: the weight oscillates and never settles.
            moment = time.monotonic() if now is None else now
            amplitude = max(20.0, abs(self.load_g) * 0.02)
            gross += amplitude * math.sin(2 * math.pi * moment / 0.7)
            stable = False
        overload = self.overload or gross > self.capacity_g
        underload = self.underload or gross < -self.zero_range_g
        return Reading(
            gross_g=round(gross, 1),
            net_g=round(gross - self.tare_g, 1),
            tare_g=round(self.tare_g, 1),
            stable=stable and not overload and not underload,
            overload=overload,
            underload=underload,
        )

    def zero(self, immediately: bool = False) -> str:
        """Set zero here: "done", "unstable", "above_range" or "below_range"."""
        reading = self.reading()
        if not reading.stable and not immediately:
            return "unstable"
        if self.load_g > self.zero_range_g:
            return "above_range"
        if self.load_g < -self.zero_range_g:
            return "below_range"
        self.zero_offset_g = self.load_g
        self.tare_g = 0.0
        return "done"

    def tare(self, immediately: bool = False) -> str:
        """Take the gross weight as tare: "done", "unstable", "above_range" or "below_range"."""
        reading = self.reading()
        if reading.overload:
            return "above_range"
        if reading.underload or reading.gross_g < 0:
            return "below_range"
        if not reading.stable and not immediately:
            return "unstable"
        self.tare_g = reading.gross_g
        return "done"

    def preset_tare(self, grams: float) -> str:
        """Set a known tare: "done", "above_range" or "below_range"."""
        if grams < 0:
            return "below_range"
        if grams > self.capacity_g:
            return "above_range"
        self.tare_g = float(grams)
        return "done"

    def clear_tare(self) -> None:
        """Back to gross weighing."""
        self.tare_g = 0.0
