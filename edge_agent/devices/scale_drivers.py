"""The driver for a configured scale: the one place that knows every scale protocol.

The interface (`scale.py`) knows no driver and every driver imports the interface, so the
choice of a driver lives here, above both, and no import has to hide inside a function.
`weigh_once` is the one way to ask a scale nobody else is reading for a weight: the doctor
checks a station's scale with it, discovery probes a serial port protocol by protocol with it.
"""

from __future__ import annotations

from typing import Protocol

from dockside.errors import ScaleError

from .cas import CasScale
from .config import ScaleConfig
from .mt_sics import MtSicsScale
from .nci_scp12 import NciScp12Scale
from .scale import PROTOCOL_NAMES, Scale, WeightReading
from .toledo_8217 import Toledo8217Scale

__all__ = ["SCALE_DRIVERS", "ScaleDriver", "open_scale", "weigh_once"]


class ScaleDriver(Protocol):
    """A driver class: built from the scale's config and how long a weight may take to come."""

    def __call__(self, config: ScaleConfig, *, read_timeout_s: float = ...) -> Scale: ...


# Each protocol's driver, by the protocol's name in the station's settings.
SCALE_DRIVERS: dict[str, ScaleDriver] = {
    "mt-sics": MtSicsScale,
    "toledo-8217": Toledo8217Scale,
    "nci-scp12": NciScp12Scale,
    "cas": CasScale,
}


def open_scale(config: ScaleConfig, *, read_timeout_s: float = 1.0) -> Scale:
    """The driver for a configured scale, not yet opened."""
    driver = SCALE_DRIVERS.get(config.protocol)
    if driver is None:
        raise ScaleError(
            f"the scale speaks {config.protocol!r}, which Dockside does not read: "
            f"set it to one of {', '.join(PROTOCOL_NAMES.values())}",
            code="scale_protocol_unsupported",
        )
    return driver(config, read_timeout_s=read_timeout_s)


def weigh_once(config: ScaleConfig, *, read_timeout_s: float = 1.0) -> WeightReading:
    """One reading from a scale no reader holds: open its port, weigh, let the port go.

    Raises the driver's ScaleError when there is no weight (the type says why).
    """
    scale = open_scale(config, read_timeout_s=read_timeout_s)
    try:
        scale.open()
        return scale.read()
    finally:
        scale.close()
