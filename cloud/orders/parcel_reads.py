"""Reading parcels back: an order's parcels as the OMS expected them joined with what the edge
labelled (`merge_parcels`), for one order, many orders (an export) or one parcel row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from cloud.orders.parcels import ParcelState
from cloud.storage import schema

__all__ = ["merge_parcels", "order_parcels", "parcel_row", "parcels_of_orders"]


def _parcel_json(row: Any) -> dict[str, Any]:
    return {
        "number": int(row["number"]),
        "state": row["state"],
        "tracking_number": row["tracking_number"],
        "carrier": row["carrier"],
        "service": row["service"],
        "weight_g": row["weight_g"],
        "dimensions_mm": json.loads(row["dimensions_mm"]) if row["dimensions_mm"] else None,
        "documents": json.loads(row["documents"]),
        "manifest_id": row["manifest_id"],
        "labelled_at": row["labelled_at"].isoformat() if row["labelled_at"] else None,
    }


def parcels_of_orders(
    conn: Connection, tenant_id: int, refs: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The stored parcels of each of `refs` (an order without any is missing), by number."""
    table = schema.parcels
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(refs), 2_000):
        rows = conn.execute(
            select(table)
            .where(
                table.c.tenant_id == tenant_id,
                schema.one_of(table.c.order_ref, refs[start : start + 2_000], conn.dialect),
            )
            .order_by(table.c.order_ref, table.c.number)
        ).mappings()
        for row in rows:
            found.setdefault(row["order_ref"], []).append(_parcel_json(row))
    return found


def merge_parcels(
    expected: Sequence[Mapping[str, Any]], stored: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """An order's parcels: each expected one (the order's `parcels`, else one) joined with its row.

    A parcel the OMS expected and the edge has not labelled yet is `expected`, with what the OMS
    said of it; the carrier label the OMS sent shows as its format and size, never its bytes.
    """
    rows = {int(row["number"]): row for row in stored}
    count = max([len(expected) or 1, *rows])
    merged: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        oms = expected[number - 1] if number <= len(expected) else {}
        row = rows.get(number)
        label = oms.get("label")
        parcel: dict[str, Any] = {
            "number": number,
            "state": ParcelState.EXPECTED.value,
            "tracking_number": oms.get("tracking_number", ""),
            "carrier": oms.get("carrier", ""),
            "service": oms.get("service", ""),
            "weight_g": None,
            "dimensions_mm": oms.get("dimensions_mm"),
            "documents": [],
            "manifest_id": None,
            "labelled_at": None,
        }
        if row is not None:
            # What the edge reported wins; what it left empty is what the OMS said.
            parcel.update({key: value for key, value in row.items() if value not in (None, "")})
        elif number > len(expected) and number > 1:
            continue  # neither expected nor labelled: a gap the station left
        parcel["expected_weight_g"] = oms.get("expected_weight_g")
        parcel["label"] = (
            {
                "format": label["format"],
                "bytes": len(label["data_base64"]) * 3 // 4 - label["data_base64"][-2:].count("="),
            }
            if isinstance(label, dict)
            else None
        )
        merged.append(parcel)
    return merged


def order_parcels(
    conn: Connection, tenant_id: int, order_ref: str, order: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One order's parcels (`order` is its stored JSON, decoded): see merge_parcels."""
    stored = parcels_of_orders(conn, tenant_id, [order_ref]).get(order_ref, [])
    return merge_parcels(order.get("parcels") or [], stored)


def parcel_row(conn: Connection, tenant_id: int, order_ref: str, number: int) -> Any:
    """The stored row of parcel `number` of an order (None when the parcel has none)."""
    parcels = schema.parcels
    return conn.execute(
        select(parcels).where(
            parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref, parcels.c.number == number
        )
    ).first()
