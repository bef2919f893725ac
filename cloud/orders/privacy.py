"""Personal data: erasing an order's ship-to on request, keeping the audit trail and the facts.

Only the person-identifying parts of the ship-to go (name, company, street, city, region, postal
code, phone); the destination country, the lines, weights, states, events and the audit log stay,
so reports and the order's timeline still add up. The erased order is synced to its warehouse's
agents, which replace their copy; the erasure itself appears on the timeline and in the audit log
without the erased values. Amendments (a re-ingest that changed the ship-to) keep their before and
after on the timeline and in the audit log, so their ship-tos are blanked the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, select, update

from cloud.orders.ingest import AMENDED, order_sync_body
from cloud.orders.order_rows import order_change, order_in_scope
from cloud.orders.states import record_cloud_event
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps

__all__ = ["PERSONAL_FIELDS", "erase_order_personal_data", "without_personal_data"]

PERSONAL_FIELDS = ("name", "company", "street", "street2", "city", "region", "postal_code", "phone")


def without_personal_data(order: dict[str, Any]) -> dict[str, Any]:
    """The order with its ship-to's personal fields blanked (country kept)."""
    ship_to = dict(order.get("ship_to") or {})
    for field in PERSONAL_FIELDS:
        if field in ship_to:
            ship_to[field] = ""
    return {**order, "ship_to": ship_to}


def erase_order_personal_data(
    store: CloudStore, tenant_id: int, order_ref: str, *, by: str, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """Blank an order's personal data in the cloud and tell its agents; returns what was done."""
    table = schema.orders
    with store.write() as tx:
        tx.lock_clock()
        order = order_in_scope(tx.conn, tenant_id, order_ref, warehouses, fix="check the reference")
        body = json.loads(order.body)
        erased = without_personal_data(body)
        if erased == body:
            return {"order_ref": order_ref, "erased": False}
        text = dumps(erased)
        tx.conn.execute(update(table).where(table.c.id == order.id).values(body=text, updated_at=tx.now))
        _erase_amendments(tx.conn, tenant_id, int(order.id), order_ref)
        record_cloud_event(tx, order, "personal_data_erased", {"by": by, "fields": list(PERSONAL_FIELDS)})
        tx.append_changes([order_change(order, order_sync_body(text, order.state))])
    return {"order_ref": order_ref, "erased": True}


def _erase_amendments(conn: Connection, tenant_id: int, order_id: int, order_ref: str) -> None:
    """Blank the ship-tos in the order's amendments (timeline events and audit entries)."""

    def blanked(change: Any) -> Any:
        return without_personal_data(change) if isinstance(change, dict) and "ship_to" in change else change

    events, entries = schema.order_events, schema.audit_log
    for event in conn.execute(
        select(events.c.id, events.c.body).where(events.c.order_id == order_id, events.c.kind == AMENDED)
    ).all():
        body = json.loads(event.body)
        body.update(before=blanked(body.get("before")), after=blanked(body.get("after")))
        conn.execute(update(events).where(events.c.id == event.id).values(body=dumps(body)))
    for row in conn.execute(
        select(entries.c.id, entries.c.before, entries.c.after).where(
            entries.c.tenant_id == tenant_id,
            entries.c.object_kind == "order",
            entries.c.object_key == order_ref,
            entries.c.action == "amend_order",
        )
    ).all():
        values = {
            name: dumps(blanked(json.loads(text)))
            for name, text in (("before", row.before), ("after", row.after))
            if text
        }
        conn.execute(update(entries).where(entries.c.id == row.id).values(**values))
