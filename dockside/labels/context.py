"""What a label template sees: the variables every shipped template can rely on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    parcel_number: int = 1,
    parcel_count: int = 1,
    dimensions_mm: Sequence[int] | None = None,
    sscc: str = "",
) -> dict[str, Any]:
    """The template variables for one parcel.

    `order` is the order's JSON shape (DESIGN.md); `ship_to` is lifted out of it for brevity, and
    `po_number` and `ship_to_gln` are always there (empty when the order has none). The parcel is
    `parcel_number` of `parcel_count` ("Parcel 1 of 2"), with its box `dimensions_mm` (length,
    width, height) when known; `sscc` is its GS1 SSCC-18 for a carton label, else empty.
    """
    b2b = {"po_number": order.get("po_number", ""), "ship_to_gln": order.get("ship_to_gln", "")}
    return {
        "order": {**order, **b2b},
        "ship_to": order["ship_to"],
        "ship_from": ship_from,
        "lines": order.get("lines", []),
        "parcel": {
            "number": parcel_number,
            "count": max(parcel_count, parcel_number),
            "weight_g": weight_g,
            "weight_kg": f"{weight_g / 1000:.2f}",
            "weight_lb": f"{weight_g / 453.59237:.2f}",
            "dimensions_mm": list(dimensions_mm) if dimensions_mm else None,
        },
        "shipment": {"carrier": carrier, "service": service, "tracking": tracking, "sscc": sscc},
        "station": station,
        "job_id": job_id,
        "printed_at": printed_at,
    }
