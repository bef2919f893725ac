"""Voiding bought labels at their carrier's API: those of cancelled orders are marked for it
(`mark_cancelled`), as are those of parcels voided at the edge or relabelled; `void_pending_labels`
calls the API outside any write transaction and records each outcome; a void the carrier declines,
or that keeps failing, opens an exception telling a person to void it in the carrier's account.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update

from cloud.orders.bought_labels import VOID_PENDING, bought_entries, void_bought_labels
from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.orders.parcel_reads import parcel_row
from cloud.shipping.carrier_api import CarrierApiError
from cloud.shipping.carrier_calls import (
    MAX_ATTEMPTS,
    ROUND_ROWS,
    AdapterFactory,
    default_adapter,
    open_adapter,
)
from cloud.shipping.carriers import api_secret
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.errors import DocksideError
from dockside.orders import OrderState

__all__ = ["mark_cancelled", "void_pending_labels"]


def mark_cancelled(store: CloudStore) -> None:
    """Mark the bought labels of cancelled orders for voiding."""
    parcels, orders = schema.parcels, schema.orders
    with store.write() as tx:
        rows = tx.conn.execute(
            select(parcels.c.id, parcels.c.documents)
            .join(
                orders,
                (orders.c.tenant_id == parcels.c.tenant_id) & (orders.c.order_ref == parcels.c.order_ref),
            )
            .where(
                orders.c.state == OrderState.CANCELLED.value, parcels.c.documents.like('%"state":"bought"%')
            )
        ).all()
        for row in rows:
            documents = json.loads(row.documents)
            void_bought_labels(documents)
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))


def void_pending_labels(
    store: CloudStore,
    tenant_id: int | None = None,
    order_ref: str | None = None,
    *,
    factory: AdapterFactory = default_adapter,
) -> list[dict[str, Any]]:
    """Void at their APIs the bought labels marked `void_pending` (of one order, or all); outcomes
    {"order_ref", "parcel", "label_id", "outcome": "voided" | "declined" | "retry" | "failed"}."""
    parcels = schema.parcels
    query = select(parcels.c.tenant_id, parcels.c.order_ref, parcels.c.number, parcels.c.documents).where(
        parcels.c.documents.like(f'%"state":"{VOID_PENDING}"%')
    )
    if tenant_id is not None:
        query = query.where(parcels.c.tenant_id == tenant_id)
    if order_ref is not None:
        query = query.where(parcels.c.order_ref == order_ref)
    with store.read() as conn:
        todo: list[tuple[int, str, int, dict[str, Any], tuple[str, str] | None]] = []
        for row in conn.execute(query.limit(ROUND_ROWS)).all():
            for entry in bought_entries(json.loads(row.documents)):
                if entry.get("state") != VOID_PENDING:
                    continue
                try:
                    secret: tuple[str, str] | None = api_secret(
                        conn, int(row.tenant_id), str(entry.get("carrier"))
                    )
                except DocksideError:
                    secret = None
                todo.append((int(row.tenant_id), row.order_ref, int(row.number), entry, secret))
    outcomes = []
    for tenant, ref, number, entry, secret in todo:
        label_id = str(entry.get("label_id"))
        outcome = "failed"
        if secret is not None:
            try:
                with open_adapter(factory, *secret) as carrier_api:
                    outcome = "voided" if carrier_api.void_label(label_id) else "declined"
            except CarrierApiError as exc:
                outcome = "retry" if exc.retry_may_help else "failed"
        outcomes.append(_store_void(store, tenant, ref, number, label_id, outcome))
    return outcomes


def _store_void(
    store: CloudStore, tenant_id: int, order_ref: str, number: int, label_id: str, outcome: str
) -> dict[str, Any]:
    parcels, orders = schema.parcels, schema.orders
    with store.write() as tx:
        tx.lock_clock()
        row = parcel_row(tx.conn, tenant_id, order_ref, number)
        if row is None:
            return {"order_ref": order_ref, "parcel": number, "label_id": label_id, "outcome": outcome}
        documents = json.loads(row.documents)
        for entry in bought_entries(documents):
            if entry.get("label_id") != label_id or entry.get("state") != VOID_PENDING:
                continue
            entry["attempts"] = int(entry.get("attempts", 0)) + 1
            if outcome == "retry" and entry["attempts"] >= MAX_ATTEMPTS:
                outcome = "failed"
            entry["state"] = {"voided": "voided", "declined": "void_declined", "failed": "void_failed"}.get(
                outcome, VOID_PENDING
            )
            if outcome in ("declined", "failed"):
                warehouse = tx.conn.execute(
                    select(orders.c.warehouse_id).where(
                        orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref
                    )
                ).scalar()
                open_exception(
                    tx,
                    tenant_id=tenant_id,
                    warehouse_id=None if warehouse is None else int(warehouse),
                    order_ref=order_ref,
                    kind=ExceptionKind.LABEL_VOID_FAILED,
                    message=(
                        f"label {label_id} of parcel {number} of order {order_ref} "
                        f"(carrier {entry.get('carrier')}, "
                        f"{entry.get('tracking_number')}) could not be voided at the carrier's API "
                        f"({outcome}): "
                        "void it in the carrier's account so it is not charged"
                    ),
                    detail={"parcel": number, "label_id": label_id, "outcome": outcome},
                )
        tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))
    return {"order_ref": order_ref, "parcel": number, "label_id": label_id, "outcome": outcome}
