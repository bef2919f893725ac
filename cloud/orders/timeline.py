"""An order read back: as ingested, with its state and events, and its timeline for a person.

The timeline stitches the cloud's and the edge's events of one order together in time order,
each with who or what it came from (end-to-end monitoring), and the exceptions it opened. Both
show the order's `parcels` (cloud.orders.parcel_reads): what the OMS expected joined with what
the edge labelled, each with its tracking number, carrier, service, weight and dimensions; a
timeline entry about one parcel's document names that parcel.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from cloud.orders.parcel_reads import order_parcels
from cloud.orders.parcels import JOB_EVENTS
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import NotFound

__all__ = ["get_order", "order_timeline"]


def get_order(
    store: CloudStore, tenant_id: int, order_ref: str, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """The order as ingested, with its state, timestamps and events in time order.

    With `warehouses`, an order of another warehouse is NotFound, exactly like a missing one.
    """
    table = schema.orders
    events = schema.order_events
    with store.read() as conn:
        query = select(table.c.id, table.c.state, table.c.body, table.c.created_at, table.c.updated_at).where(
            table.c.tenant_id == tenant_id, table.c.order_ref == order_ref
        )
        if warehouses is not None:
            query = query.join(schema.warehouses, schema.warehouses.c.id == table.c.warehouse_id).where(
                schema.warehouses.c.code.in_(sorted(warehouses))
            )
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(
                f"there is no order {order_ref[:64]!r}: check the reference or ingest the order first"
            )
        event_rows = conn.execute(
            select(events)
            .where(events.c.order_id == row.id)
            .order_by(events.c.occurred_at, events.c.received_at, events.c.id)
        ).mappings()
        timeline = [
            {
                "event_id": event["event_id"],
                "kind": event["kind"],
                "source": event["source"],
                "station": event["station"],
                "agent": event["agent_id"],
                "sequence": event["sequence"],
                "occurred_at": event["occurred_at"].isoformat(),
                "received_at": event["received_at"].isoformat(),
                "body": json.loads(event["body"]),
            }
            for event in event_rows
        ]
        order: dict[str, Any] = json.loads(row.body)
        # The OMS's expected parcels, joined with the labelled ones (carrier labels as their size).
        parcels = order_parcels(conn, tenant_id, order_ref, order)
    order.update(
        parcels=parcels,
        state=row.state,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
        events=timeline,
    )
    return order


def order_timeline(
    store: CloudStore, tenant_id: int, order_ref: str, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """Every cloud and edge event of an order in time order, each with who or what it came from.

    A source names the agent, station and printer for edge facts and the user for cloud writes;
    exceptions the order opened appear at the time they opened.
    """
    order = get_order(store, tenant_id, order_ref, warehouses=warehouses)
    entries: list[dict[str, Any]] = [
        {"at": order["created_at"], "kind": "order_created", "source": {"type": "oms"}, "detail": {}}
    ]
    for event in order["events"]:
        body = event["body"]
        if event["source"] == "edge":
            source = {
                "type": "agent",
                "agent": event["agent"],
                "station": event["station"] or None,
                "printer": body.get("printer") if isinstance(body, dict) else None,
            }
        else:
            source = {"type": "user", "user": body.get("by") if isinstance(body, dict) else None}
        entry = {"at": event["occurred_at"], "kind": event["kind"], "source": source, "detail": body}
        if event["kind"] in JOB_EVENTS and isinstance(body, dict):
            entry["parcel"] = _parcel_summary(body)
        entries.append(entry)
    exceptions = schema.order_exceptions
    with store.read() as conn:
        rows = conn.execute(
            select(exceptions.c.id, exceptions.c.kind, exceptions.c.opened_at, exceptions.c.status).where(
                exceptions.c.tenant_id == tenant_id, exceptions.c.order_ref == order_ref
            )
        ).all()
    for row in rows:
        entries.append(
            {
                "at": row.opened_at.isoformat(),
                "kind": "exception_opened",
                "source": {"type": "cloud"},
                "detail": {"exception_id": row.id, "exception_kind": row.kind, "status": row.status},
            }
        )
    entries.sort(key=lambda entry: entry["at"])
    return {"order_ref": order_ref, "state": order["state"], "parcels": order["parcels"], "timeline": entries}


def _parcel_summary(body: dict[str, Any]) -> dict[str, Any]:
    """What a job event says of its parcel (an agent older than parcels says only parcel 1)."""
    return {
        "number": body.get("parcel", 1),
        "document": body.get("document", "shipping_label"),
        "tracking_number": body.get("tracking_number", ""),
        "carrier": body.get("carrier", ""),
        "service": body.get("service", ""),
        "weight_g": body.get("weight_g"),
        "dimensions_mm": body.get("dimensions_mm"),
        "sscc": body.get("sscc", ""),
    }
