"""What a label template sees: the variables every shipped template can rely on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["label_context"]


def label_context(
    order: Mapping[str, Any],
    *,
    weight_g: int,
    carrier: str,
    service: str,
    tracking: str,
    ship_from: Mapping[str, Any],
    station: str,
    job_id: str,
    printed_at: str,
) -> dict[str, Any]:
    """The template variables for one parcel.

    `order` is the order's JSON shape (DESIGN.md); `ship_to` is lifted out of it for brevity.
    """
    return {
        "order": order,
        "ship_to": order["ship_to"],
        "ship_from": ship_from,
        "lines": order.get("lines", []),
        "parcel": {
            "weight_g": weight_g,
            "weight_kg": f"{weight_g / 1000:.2f}",
            "weight_lb": f"{weight_g / 453.59237:.2f}",
        },
        "shipment": {"carrier": carrier, "service": service, "tracking": tracking},
        "station": station,
        "job_id": job_id,
        "printed_at": printed_at,
    }
