"""Exports of orders, exceptions and the audit log as CSV or JSON lines, streamed a page at a time.

JSON lines carry each record whole; CSV flattens it to fixed columns (nested values as JSON), so
a spreadsheet opens it and a script can still read the detail. An order's `parcels` are what the
OMS expected joined with what the edge labelled (cloud.orders.parcel_reads: tracking number, carrier,
service, weight, dimensions, documents, state; a carrier label as its format and size, not its
bytes); CSV adds their count and tracking numbers as columns of their own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from sqlalchemy import select

from cloud.orders.parcel_reads import merge_parcels, parcels_of_orders
from cloud.records import audit
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps

__all__ = [
    "AUDIT_COLUMNS",
    "EXCEPTION_COLUMNS",
    "ORDER_COLUMNS",
    "as_csv",
    "as_json_lines",
    "iter_audit",
    "iter_exceptions",
    "iter_orders",
]

ORDER_COLUMNS: tuple[str, ...] = (
    "order_ref",
    "warehouse",
    "state",
    "service_level",
    "country",
    "postal_code",
    "expected_weight_g",
    "value",
    "currency",
    "lines",
    "created_at",
    "updated_at",
    "po_number",
    "ship_to_gln",
    "parcel_count",
    "tracking_numbers",
    "parcels",
)
EXCEPTION_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "status",
    "warehouse",
    "order_ref",
    "assignee",
    "message",
    "comment",
    "opened_at",
    "updated_at",
    "resolved_at",
    "detail",
)
AUDIT_COLUMNS: tuple[str, ...] = (
    "id",
    "at",
    "actor",
    "actor_name",
    "role",
    "action",
    "object_kind",
    "object_key",
    "warehouse",
    "before",
    "after",
)
_PAGE = 1000


def iter_orders(
    store: CloudStore, tenant_id: int, *, warehouses: Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every order in scope, oldest first: its body plus state and timestamps, its parcels joined."""
    table = schema.orders
    last = 0
    while True:
        query = (
            select(
                table.c.id,
                table.c.order_ref,
                table.c.body,
                table.c.state,
                table.c.created_at,
                table.c.updated_at,
            )
            .join(schema.warehouses, schema.warehouses.c.id == table.c.warehouse_id)
            .where(table.c.tenant_id == tenant_id, table.c.id > last)
        )
        if warehouses is not None:
            query = query.where(schema.warehouses.c.code.in_(sorted(warehouses)))
        with store.read() as conn:
            rows = conn.execute(query.order_by(table.c.id).limit(_PAGE)).all()
            if not rows:
                return
            stored = parcels_of_orders(conn, tenant_id, [row.order_ref for row in rows])
        for row in rows:
            order = json.loads(row.body)
            yield {
                **order,
                "parcels": merge_parcels(order.get("parcels") or [], stored.get(row.order_ref, [])),
                "state": row.state,
                "created_at": row.created_at.isoformat(),
                "updated_at": row.updated_at.isoformat(),
            }
        last = rows[-1].id


def iter_exceptions(
    store: CloudStore, tenant_id: int, *, warehouses: Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every exception in scope, oldest first."""
    # The center lists newest first, at most 1,000; an export reads every page, oldest first.
    table = schema.order_exceptions
    last = 0
    while True:
        query = (
            select(table, schema.warehouses.c.code.label("warehouse"))
            .outerjoin(schema.warehouses, schema.warehouses.c.id == table.c.warehouse_id)
            .where(table.c.tenant_id == tenant_id, table.c.id > last)
        )
        if warehouses is not None:
            query = query.where(schema.warehouses.c.code.in_(sorted(warehouses)))
        with store.read() as conn:
            rows = conn.execute(query.order_by(table.c.id).limit(_PAGE)).mappings().all()
        if not rows:
            return
        for row in rows:
            yield {
                "id": row["id"],
                "kind": row["kind"],
                "status": row["status"],
                "warehouse": row["warehouse"],
                "order_ref": row["order_ref"],
                "assignee": row["assignee"],
                "message": row["message"],
                "comment": row["comment"],
                "opened_at": row["opened_at"].isoformat(),
                "updated_at": row["updated_at"].isoformat(),
                "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
                "detail": json.loads(row["detail"]),
            }
        last = rows[-1]["id"]


def iter_audit(
    store: CloudStore, tenant_id: int, *, warehouses: Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every audit entry of the tenant (of `warehouses` only, when given), oldest first."""
    return audit.iter_audit(store, tenant_id, warehouses=warehouses)


def _order_row(order: dict[str, Any]) -> dict[str, Any]:
    ship_to = order.get("ship_to") or {}
    value = order.get("value") or {}
    parcels = order.get("parcels") or []
    return {
        "order_ref": order["order_ref"],
        "warehouse": order["warehouse"],
        "state": order["state"],
        "service_level": order.get("service_level", ""),
        "country": ship_to.get("country", ""),
        "postal_code": ship_to.get("postal_code", ""),
        "expected_weight_g": order.get("expected_weight_g"),
        "value": value.get("amount", ""),
        "currency": value.get("currency", ""),
        "lines": order.get("lines", []),
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
        "po_number": order.get("po_number", ""),
        "ship_to_gln": order.get("ship_to_gln", ""),
        "parcel_count": len(parcels),
        "tracking_numbers": " ".join(p["tracking_number"] for p in parcels if p.get("tracking_number")),
        "parcels": parcels,
    }


def as_json_lines(records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object a line."""
    for record in records:
        yield (dumps(record) + "\n").encode("utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return dumps(value)
    text = str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: quote it so it stays text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def as_csv(
    records: Iterable[dict[str, Any]], columns: tuple[str, ...], *, orders: bool = False
) -> Iterator[bytes]:
    """A header line, then one line a record, in `columns` order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for record in records:
        row = _order_row(record) if orders else record
        writer.writerow([_cell(row.get(column)) for column in columns])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
