"""A carrier label the OMS sends for one parcel of an order (`set_parcel_label`): checked, put on
the order's parcel, and the order sent to the agents again; refused once the parcel is labelled
at the edge or the order is past the point where its labels may change.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select, update

from cloud.orders.ingest import order_sync_body
from cloud.orders.order_rows import order_change, order_in_scope
from cloud.orders.parcels import ParcelState
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.errors import Conflict, InputError
from dockside.http_errors import describe_field_errors
from dockside.labels.carrier_documents import check_carrier_label
from dockside.orders import Order, OrderState
from dockside.shipping.parcels import MAX_PARCELS, LabelDocument

__all__ = ["OrderLocked", "ParcelAlreadyLabelled", "set_parcel_label"]


class ParcelAlreadyLabelled(Conflict):
    """The parcel already has a label printed at the edge: its carrier label can no longer change."""

    code = "parcel_labelled"
    http_status = 409


class OrderLocked(Conflict):
    """The order is past the point where its carrier labels may change."""

    code = "order_locked"
    http_status = 409


# A carrier label may still arrive while the order is being packed (the second carton's, say).
_LABEL_OPEN_STATES = frozenset(
    {OrderState.CREATED.value, OrderState.RELEASED.value, OrderState.PACKED.value, OrderState.EXCEPTION.value}
)


def set_parcel_label(
    store: CloudStore,
    tenant_id: int,
    order_ref: str,
    number: int,
    document: LabelDocument,
    *,
    by: str,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Put the OMS's carrier label on parcel `number` of an order; the agents receive the order again.

    Parcels up to `number` that the order did not list yet are added empty. Refused when the order
    is labelled, shipped or cancelled, when that parcel already has a printed label, or when the
    order's labels together would pass the order's bound.
    """
    if not 1 <= number <= MAX_PARCELS:
        raise InputError(f"parcel {number} does not exist: parcels are numbered 1 to {MAX_PARCELS}")
    # Checked before the write begins: reading a PDF's pages must not hold the write lock.
    size = len(check_carrier_label(document).data)
    table = schema.orders
    with store.write() as tx:
        tx.lock_clock()
        order = order_in_scope(tx.conn, tenant_id, order_ref, warehouses)
        if order.state not in _LABEL_OPEN_STATES:
            raise OrderLocked(
                f"order {order_ref} is {order.state}: its carrier labels can no longer change; "
                "void the parcel at the warehouse and relabel it there"
            )
        labelled = tx.conn.execute(
            select(schema.parcels.c.state).where(
                schema.parcels.c.tenant_id == tenant_id,
                schema.parcels.c.order_ref == order_ref,
                schema.parcels.c.number == number,
            )
        ).scalar()
        if labelled is not None and labelled != ParcelState.VOIDED.value:
            raise ParcelAlreadyLabelled(
                f"parcel {number} of order {order_ref} is {labelled} already: void its label at the "
                "warehouse first, then send the new one"
            )
        body = json.loads(order.body)
        parcels = list(body.get("parcels") or [])
        while len(parcels) < number:
            parcels.append({})
        parcels[number - 1] = {**parcels[number - 1], "label": document.model_dump(mode="json")}
        try:
            updated = Order.model_validate({**body, "parcels": parcels})
        except ValidationError as exc:
            raise InputError(
                describe_field_errors(
                    exc.errors(include_url=False, include_input=False),
                    fix="send a smaller label or fewer labels with this order",
                    whole="the order",
                ),
                code="order_too_large",
            ) from None
        text = updated.model_dump_json()
        tx.conn.execute(update(table).where(table.c.id == order.id).values(body=text, updated_at=tx.now))
        tx.conn.execute(
            insert(schema.order_events).values(
                event_id=f"cloud:{uuid.uuid4()}",
                tenant_id=tenant_id,
                warehouse_id=order.warehouse_id,
                order_id=order.id,
                order_ref=order_ref,
                kind="parcel_label_received",
                source="cloud",
                station="",
                agent_id=None,
                sequence=0,
                occurred_at=tx.now,
                received_at=tx.now,
                body=dumps(
                    {
                        "by": by,
                        "parcel": number,
                        "format": document.format.value,
                        "bytes": size,
                    }
                ),
            )
        )
        tx.append_changes([order_change(order, order_sync_body(text, order.state))])
    return {
        "order_ref": order_ref,
        "parcel": number,
        "format": document.format.value,
        "bytes": size,
        "parcels": len(parcels),
    }
