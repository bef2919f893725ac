"""The order's lifecycle: which state changes a person or an OMS may make, and recording them.

    created ──► released ──► packed ──► labelled ──► shipped
       │           │           │           │
       └───────────┴───────────┴───────────┴──► cancelled        (any open state ─► exception ─► back)

Packing and labelling are the edge's facts (edge events move the order); a person releases,
ships, cancels and parks orders in `exception`. A refused change names the current state and the
states it may go to. Every change is an order change in the change log, so a cancel reaches the
warehouse's agents, whose pack path refuses a cancelled order.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import insert, update

from cloud.orders.ingest import order_sync_body
from cloud.orders.order_rows import order_change, order_in_scope
from cloud.storage import schema
from cloud.storage.store import CloudStore, WriteTransaction, dumps
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import DocksideError
from dockside.orders import OrderState

__all__ = ["TRANSITIONS", "IllegalTransition", "change_state", "record_cloud_event"]

_S = OrderState
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    _S.CREATED: frozenset({_S.RELEASED, _S.CANCELLED, _S.EXCEPTION}),
    _S.RELEASED: frozenset({_S.CREATED, _S.PACKED, _S.CANCELLED, _S.EXCEPTION}),
    _S.PACKED: frozenset({_S.LABELLED, _S.SHIPPED, _S.CANCELLED, _S.EXCEPTION}),
    _S.LABELLED: frozenset({_S.SHIPPED, _S.CANCELLED, _S.EXCEPTION}),
    _S.SHIPPED: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.EXCEPTION: frozenset({_S.RELEASED, _S.PACKED, _S.LABELLED, _S.SHIPPED, _S.CANCELLED}),
}


class IllegalTransition(DocksideError):
    """The order's lifecycle does not allow this change from its current state."""

    code = "illegal_transition"
    http_status = 409


def record_cloud_event(
    tx: WriteTransaction, order: Any, kind: str, body: dict[str, Any], *, station: str = ""
) -> None:
    """Add a cloud-side event to an order's timeline (order is a row with id, tenant, warehouse, ref)."""
    tx.conn.execute(
        insert(schema.order_events).values(
            event_id=f"cloud:{uuid.uuid4()}",
            tenant_id=order.tenant_id,
            warehouse_id=order.warehouse_id,
            order_id=order.id,
            order_ref=order.order_ref,
            kind=kind,
            source="cloud",
            station=station,
            agent_id=None,
            sequence=0,
            occurred_at=tx.now,
            received_at=tx.now,
            body=dumps(body),
        )
    )


def _sync_body(body: str, state: OrderState, now: str) -> str:
    text = order_sync_body(body, state.value)
    # Agents purge a shipped order's personal data some days after this moment (edge_agent.store.privacy).
    return f'{text[:-1]},"shipped_at":"{now}"}}' if state is OrderState.SHIPPED else text


def change_state(
    store: CloudStore,
    tenant_id: int,
    order_ref: str,
    to: OrderState,
    *,
    by: str,
    reason: str = "",
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Move an order to `to` if its lifecycle allows it; returns {"order_ref", "from", "to"}."""
    table = schema.orders
    with store.write() as tx:
        tx.lock_clock()
        order = order_in_scope(tx.conn, tenant_id, order_ref, warehouses)
        current = OrderState(order.state)
        if current == to:
            return {"order_ref": order_ref, "from": current.value, "to": to.value, "changed": False}
        allowed = TRANSITIONS[current]
        if to not in allowed:
            choices = ", ".join(sorted(state.value for state in allowed)) or "nothing: it is final"
            raise IllegalTransition(
                f"order {order_ref} is {current.value} and cannot become {to.value}: "
                f"from {current.value} it may become {choices}"
            )
        tx.conn.execute(update(table).where(table.c.id == order.id).values(state=to.value, updated_at=tx.now))
        record_cloud_event(
            tx, order, "state_changed", {"from": current.value, "to": to.value, "by": by, "reason": reason}
        )
        emit(
            tx,
            tenant_id,
            WebhookEvent.ORDER_STATE_CHANGED,
            [
                {
                    "order_ref": order_ref,
                    "warehouse": order.code,
                    "from": current.value,
                    "to": to.value,
                    "by": by,
                }
            ],
        )
        tx.append_changes([order_change(order, _sync_body(order.body, to, tx.now.isoformat()))])
    return {"order_ref": order_ref, "from": current.value, "to": to.value, "changed": True}
