"""Relabelling a parcel whose packed weight fell outside the ruleset's tolerance: its bought label
is bought again for that weight, the old one marked for voiding, and the packer told (an
exception) to reprint that parcel's label.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update

from cloud.orders.bought_labels import BOUGHT, VOID_PENDING, bought_entries
from cloud.orders.exceptions import ExceptionKind, ExceptionStatus, open_exception
from cloud.orders.order_rows import order_change, order_row_query
from cloud.orders.parcel_reads import parcel_row
from cloud.orders.states import record_cloud_event
from cloud.shipping.carrier_api import CarrierApiError, LabelRequest
from cloud.shipping.carrier_calls import ROUND_ROWS, AdapterFactory, default_adapter, open_adapter
from cloud.shipping.carriers import api_secret
from cloud.shipping.voids import voided_sync_body
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.orders import Address, Order

__all__ = ["relabel", "relabels_needed"]


def relabels_needed(store: CloudStore) -> list[tuple[int, int, str, int, int, int]]:
    """(exception id, tenant, order, parcel, packed weight, warehouse) of open weight exceptions
    whose parcel carries a bought label that was not bought for that weight."""
    exceptions, parcels = schema.order_exceptions, schema.parcels
    found = []
    with store.read() as conn:
        rows = conn.execute(
            select(
                exceptions.c.id,
                exceptions.c.tenant_id,
                exceptions.c.warehouse_id,
                exceptions.c.order_ref,
                exceptions.c.detail,
            )
            .where(
                exceptions.c.kind == ExceptionKind.WEIGHT_OUT_OF_TOLERANCE.value,
                exceptions.c.status == ExceptionStatus.OPEN.value,
            )
            .order_by(exceptions.c.id)
            .limit(ROUND_ROWS)
        ).all()
        for row in rows:
            detail = json.loads(row.detail) if isinstance(row.detail, str) else dict(row.detail or {})
            number, weight = int(detail.get("parcel") or 1), detail.get("weight_g")
            if not isinstance(weight, int) or weight <= 0 or row.order_ref is None:
                continue
            parcel = conn.execute(
                select(parcels.c.documents).where(
                    parcels.c.tenant_id == row.tenant_id,
                    parcels.c.order_ref == row.order_ref,
                    parcels.c.number == number,
                )
            ).scalar()
            entries = bought_entries(json.loads(parcel)) if parcel else []
            live = [e for e in entries if e.get("state") == BOUGHT]
            if (
                live
                and all(e.get("relabel_for") != int(row.id) for e in entries)
                and live[-1].get("weight_g") != weight
            ):
                found.append(
                    (
                        int(row.id),
                        int(row.tenant_id),
                        str(row.order_ref),
                        number,
                        weight,
                        int(row.warehouse_id),
                    )
                )
    return found


def relabel(
    store: CloudStore,
    exception_id: int,
    tenant_id: int,
    order_ref: str,
    number: int,
    weight_g: int,
    *,
    factory: AdapterFactory = default_adapter,
) -> dict[str, Any]:
    """Buy parcel `number`'s label again for its packed weight, void the old one, and tell the
    packer (an exception) to reprint that parcel."""
    orders, parcels = schema.orders, schema.parcels
    with store.read() as conn:
        order = conn.execute(
            select(orders.c.state, orders.c.body, orders.c.warehouse_id, schema.warehouses.c.ship_from)
            .join(schema.warehouses, schema.warehouses.c.id == orders.c.warehouse_id)
            .where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).first()
        row = parcel_row(conn, tenant_id, order_ref, number)
        if order is None or row is None or order.ship_from is None:
            return {"parcel": number, "outcome": "skipped"}
        live = [e for e in bought_entries(json.loads(row.documents)) if e.get("state") == BOUGHT]
        if not live:
            return {"parcel": number, "outcome": "skipped"}
        old = live[-1]
        secret = api_secret(conn, tenant_id, str(old["carrier"]))
    body = json.loads(order.body)
    request = LabelRequest(
        order_ref=order_ref,
        parcel=number,
        ship_to=Address.model_validate(body["ship_to"]),
        ship_from=Address.model_validate_json(order.ship_from),
        weight_g=weight_g,
        service=str(old.get("service") or row.service),
        dimensions_mm=tuple(json.loads(row.dimensions_mm)) if row.dimensions_mm else None,
    )
    try:
        with open_adapter(factory, *secret) as carrier_api:
            bought = carrier_api.create_label(request)
    except CarrierApiError as exc:
        if exc.retry_may_help and not exc.may_have_bought:
            return {"parcel": number, "outcome": "retry", "code": exc.code}
        bought = None
        problem = exc.message
    with store.write() as tx:
        tx.lock_clock()
        current = parcel_row(tx.conn, tenant_id, order_ref, number)
        documents = json.loads(current.documents)
        for entry in bought_entries(documents):
            if entry.get("label_id") == old.get("label_id"):
                entry["relabel_for"] = exception_id
                if bought is not None:
                    entry["state"] = VOID_PENDING
        values: dict[str, Any] = {}
        if bought is not None:
            documents.append(
                {
                    "kind": "shipping_label",
                    BOUGHT: {
                        "label_id": bought.label_id,
                        "adapter": secret[0],
                        "carrier": old["carrier"],
                        "tracking_number": bought.tracking_number,
                        "service": str(old.get("service") or row.service),
                        "state": BOUGHT,
                        "attempts": 0,
                        "weight_g": weight_g,
                        "relabel_for": exception_id,
                    },
                }
            )
            values = {"tracking_number": bought.tracking_number, "weight_g": weight_g}
        tx.conn.execute(
            update(parcels).where(parcels.c.id == current.id).values(documents=dumps(documents), **values)
        )
        order_row = tx.conn.execute(order_row_query(tenant_id, order_ref)).one()
        if bought is None:
            message = (
                f"parcel {number} of order {order_ref} weighed {weight_g} g, outside the ruleset's "
                "tolerance, "
                f"and its label could not be bought again: {problem}; check the carrier's account, then "
                "relabel the parcel by hand"
            )
        else:
            body = json.loads(order_row.body)
            expected = list(body.get("parcels") or [])
            while len(expected) < number:
                expected.append({})
            expected[number - 1] = {
                **expected[number - 1],
                "label": bought.label.model_dump(mode="json"),
                "tracking_number": bought.tracking_number,
            }
            text = Order.model_validate({**body, "parcels": expected}).model_dump_json()
            tx.conn.execute(
                update(orders).where(orders.c.id == order_row.id).values(body=text, updated_at=tx.now)
            )
            record_cloud_event(
                tx,
                order_row,
                "label_bought",
                {
                    "parcel": number,
                    "tracking_number": bought.tracking_number,
                    "label_id": bought.label_id,
                    "weight_g": weight_g,
                    "replaces": old.get("label_id"),
                },
            )
            tx.append_changes(
                [order_change(order_row, voided_sync_body(tx, tenant_id, order_ref, text, order_row.state))]
            )
            message = (
                f"parcel {number} of order {order_ref} weighed {weight_g} g, outside the ruleset's "
                "tolerance: its "
                f"label was bought again for that weight ({bought.tracking_number}, the old "
                f"{old.get('tracking_number')} is voided); reprint parcel {number}'s label and put it "
                "on the parcel"
            )
        open_exception(
            tx,
            tenant_id=tenant_id,
            warehouse_id=int(order_row.warehouse_id),
            order_ref=order_ref,
            kind=ExceptionKind.LABEL_REPRINT_NEEDED,
            message=message[:1000],
            detail={
                "parcel": number,
                "weight_g": weight_g,
                "old_tracking_number": old.get("tracking_number"),
                "tracking_number": bought.tracking_number if bought else None,
            },
        )
    return {"parcel": number, "outcome": "relabelled" if bought else "failed"}
