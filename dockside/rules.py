"""The decision center's evaluation: which carrier, service, template and printer a parcel gets.

The same code runs in the cloud (simulation) and at the edge (the pack path). A ruleset is a
JSON object; this foundation honours its `default` decision. Ordered conditional rules arrive with
the decision-center work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_DECISION", "Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one parcel."""

    carrier: str
    service: str
    template: str
    printer_role: str = "label"
    weight_tolerance_g: int | None = None


DEFAULT_DECISION = Decision(carrier="DOCKSIDE", service="", template="shipping-4x6")


def decide(order: Mapping[str, Any], weight_g: int, ruleset: Mapping[str, Any] | None = None) -> Decision:
    """The decision for a parcel of `order` weighing `weight_g` under `ruleset`."""
    default: Mapping[str, Any] = (ruleset or {}).get("default", {})
    return Decision(
        carrier=str(default.get("carrier", DEFAULT_DECISION.carrier)),
        service=str(default.get("service") or order.get("service_level") or "standard"),
        template=str(default.get("template", DEFAULT_DECISION.template)),
        printer_role=str(default.get("printer_role", DEFAULT_DECISION.printer_role)),
        weight_tolerance_g=default.get("weight_tolerance_g"),
    )
