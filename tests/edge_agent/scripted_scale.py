"""A scale driver for tests that plays a script, so a reader's decisions can be pinned without a port.

The reader opens a new driver each time it reopens the port, so the script (what each open and
each read does, and how often the port was opened) is shared by every driver made from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.devices import ScaleConfig, WeightReading
from edge_agent.devices.scale import reading

__all__ = ["ScaleScript", "ScriptedScale"]


@dataclass
class ScaleScript:
    """Each open raises the next of `opens` (None: it opens), each read raises the next of `reads`;
    once a list is played out, opens succeed and reads weigh `grams`, stable."""

    opens: list[BaseException | None] = field(default_factory=list)
    reads: list[BaseException] = field(default_factory=list)
    grams: int = 500
    opened: int = 0

    def driver(self, config: ScaleConfig) -> ScriptedScale:
        """The `scale_factory` a ScaleReader takes."""
        return ScriptedScale(config, self)


class ScriptedScale:
    """A scale driver that does what its script says."""

    def __init__(self, config: ScaleConfig, script: ScaleScript) -> None:
        self.config = config
        self._script = script

    def open(self) -> None:
        self._script.opened += 1
        failure = self._script.opens.pop(0) if self._script.opens else None
        if failure is not None:
            raise failure

    def read(self) -> WeightReading:
        if self._script.reads:
            raise self._script.reads.pop(0)
        return reading(self._script.grams, True)

    def zero(self) -> None:
        pass

    def tare(self) -> None:
        pass

    def close(self) -> None:
        pass
