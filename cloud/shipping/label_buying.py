"""Buying the labels an order's parcels need from their api carriers (`buy_order_labels`): the
API is called outside any write transaction, then each outcome is written in a short one that
checks the order again. A bought label goes on the order's parcel (agents receive it) and on its
row; a failed purchase is counted there, and past MAX_ATTEMPTS, or when a retry cannot help, an
exception asks a person.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud.orders.bought_labels import BOUGHT, VOID_PENDING
from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.orders.order_rows import order_change, order_row
from cloud.orders.parcel_reads import parcel_row
from cloud.orders.parcels import ParcelState
from cloud.orders.states import record_cloud_event
from cloud.shipping.carrier_api import CarrierApiError, LabelRequest, PurchasedLabel
from cloud.shipping.carrier_calls import MAX_ATTEMPTS, AdapterFactory, default_adapter, open_adapter
from cloud.shipping.carriers import api_secret
from cloud.shipping.label_wants import (
    OPEN_STATES,
    RELABEL_STATES,
    Want,
    active_rules,
    api_carriers,
    labelled_by_order,
    wanted_labels,
)
from cloud.shipping.voids import voided_sync_body
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.orders import Address, Order

__all__ = ["buy_order_labels"]

log = logging.getLogger(__name__)


def buy_order_labels(
    store: CloudStore, tenant_id: int, order_ref: str, *, factory: AdapterFactory = default_adapter
) -> list[dict[str, Any]]:
    """Buy the labels an order's parcels need from their api carriers; what happened per parcel.

    Each outcome is {"parcel", "carrier", "outcome": "bought" | "retry" | "failed" | "voided", ...}.
    """
    orders, parcels = schema.orders, schema.parcels
    with store.read() as conn:
        row = conn.execute(
            select(orders.c.state, orders.c.body, schema.warehouses.c.ship_from)
            .join(schema.warehouses, schema.warehouses.c.id == orders.c.warehouse_id)
            .where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).first()
        if row is None or row.state not in (*OPEN_STATES, *RELABEL_STATES):
            return []
        api = api_carriers(conn, tenant_id)
        if not api:
            return []
        order = json.loads(row.body)
        ship_from = Address.model_validate_json(row.ship_from) if row.ship_from else None
        stored = {
            int(p.number): p
            for p in conn.execute(
                select(parcels).where(parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref)
            )
        }
        wanted = wanted_labels(
            order,
            stored,
            api,
            active_rules(conn, tenant_id),
            ship_from.country if ship_from else "",
            only_voided=row.state in RELABEL_STATES,
        )
        secrets = {want.carrier: api_secret(conn, tenant_id, want.carrier) for want in wanted}
    outcomes: list[dict[str, Any]] = []
    for want in wanted:
        if ship_from is None:
            outcomes.append(
                _failed(
                    store,
                    tenant_id,
                    order_ref,
                    want,
                    "no_ship_from",
                    f"warehouse {order['warehouse']} has no ship_from address: a carrier label needs one; "
                    "set it with PUT /api/v1/warehouses/{code}",
                    final=True,
                )
            )
            continue
        request = LabelRequest(
            order_ref=order_ref,
            parcel=want.number,
            ship_to=Address.model_validate(order["ship_to"]),
            ship_from=ship_from,
            weight_g=want.weight_g,
            service=want.service,
            dimensions_mm=want.dimensions_mm,
        )
        adapter, secret = secrets[want.carrier]
        try:
            with open_adapter(factory, adapter, secret) as carrier_api:
                bought = carrier_api.create_label(request)
        except CarrierApiError as exc:
            outcomes.append(_api_failed(store, tenant_id, order_ref, want, exc))
            continue
        outcomes.append(_store_bought(store, tenant_id, order_ref, want, adapter, bought))
    return outcomes


def _api_failed(
    store: CloudStore, tenant_id: int, order_ref: str, want: Want, exc: CarrierApiError
) -> dict[str, Any]:
    if exc.may_have_bought:
        return _failed(
            store,
            tenant_id,
            order_ref,
            want,
            exc.code,
            f"{exc.message} (carrier {want.carrier}): a label may have been bought and charged; look for "
            f"parcel {want.number} of order {order_ref} in the carrier's account and void it or send it "
            "as the OMS's label; Dockside will not buy it again by itself",
            final=True,
        )
    return _failed(store, tenant_id, order_ref, want, exc.code, exc.message, final=not exc.retry_may_help)


def _failed(
    store: CloudStore,
    tenant_id: int,
    order_ref: str,
    want: Want,
    code: str,
    message: str,
    *,
    final: bool,
) -> dict[str, Any]:
    """Count a failed purchase on the parcel row; past MAX_ATTEMPTS (or `final`) it stops, with an
    exception for a person."""
    parcels = schema.parcels
    with store.write() as tx:
        tx.lock_clock()
        order = order_row(tx.conn, tenant_id, order_ref)
        if order is None:
            return {"parcel": want.number, "carrier": want.carrier, "outcome": "failed", "code": code}
        row = parcel_row(tx.conn, tenant_id, order_ref, want.number)
        documents: list[dict[str, Any]] = json.loads(row.documents) if row is not None else []
        entry = next(
            (d for d in documents if isinstance(d.get(BOUGHT), dict) and d[BOUGHT].get("state") == "trying"),
            None,
        )
        if entry is None:
            entry = {
                "kind": "shipping_label",
                BOUGHT: {"carrier": want.carrier, "state": "trying", "attempts": 0},
            }
            documents.append(entry)
        entry[BOUGHT]["attempts"] = int(entry[BOUGHT].get("attempts", 0)) + 1
        entry[BOUGHT]["error"] = code
        stop = final or entry[BOUGHT]["attempts"] >= MAX_ATTEMPTS
        if stop:
            entry[BOUGHT]["state"] = "failed"
        if row is None:
            _insert_parcel(tx.conn, tenant_id, order_ref, want, dumps(documents))
        else:
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))
        if stop:
            open_exception(
                tx,
                tenant_id=tenant_id,
                warehouse_id=int(order.warehouse_id),
                order_ref=order_ref,
                kind=ExceptionKind.LABEL_PURCHASE_FAILED,
                message=(
                    f"the label of parcel {want.number} of order {order_ref} could not be bought from "
                    "carrier "
                    f"{want.carrier} after {entry[BOUGHT]['attempts']} attempt(s): {message}"
                )[:1000],
                detail={"parcel": want.number, "carrier": want.carrier, "code": code},
            )
    log.warning(
        "buying parcel %s of order %s from %s failed (%s)", want.number, order_ref, want.carrier, code
    )
    return {
        "parcel": want.number,
        "carrier": want.carrier,
        "outcome": "failed" if stop else "retry",
        "code": code,
    }


def _store_bought(
    store: CloudStore, tenant_id: int, order_ref: str, want: Want, adapter: str, bought: PurchasedLabel
) -> dict[str, Any]:
    """Put a bought label on the order's parcel (agents receive it) and its row; if the order left
    its open states meanwhile, the label is marked for voiding instead."""
    orders, parcels = schema.orders, schema.parcels
    entry: dict[str, Any] = {
        "kind": "shipping_label",
        BOUGHT: {
            "label_id": bought.label_id,
            "adapter": adapter,
            "carrier": want.carrier,
            "tracking_number": bought.tracking_number,
            "service": want.service,
            "state": BOUGHT,
            "attempts": 0,
            "weight_g": want.weight_g,
        },
    }
    with store.write() as tx:
        tx.lock_clock()
        order = order_row(tx.conn, tenant_id, order_ref)
        row = parcel_row(tx.conn, tenant_id, order_ref, want.number)
        documents: list[dict[str, Any]] = json.loads(row.documents) if row is not None else []
        # A failed try before this one is done with.
        documents = [
            d
            for d in documents
            if not (isinstance(d.get(BOUGHT), dict) and d[BOUGHT].get("state") == "trying")
        ]
        body = json.loads(order.body) if order is not None else {}
        expected = list(body.get("parcels") or [])
        taken = want.number <= len(expected) and labelled_by_order(expected[want.number - 1], row)
        still_open = (
            order is not None
            and not taken
            and (
                order.state in OPEN_STATES
                or (
                    order.state in RELABEL_STATES
                    and row is not None
                    and row.state == ParcelState.VOIDED.value
                )
            )
        )
        if not still_open:
            entry[BOUGHT]["state"] = VOID_PENDING
        documents.append(entry)
        values: dict[str, Any] = {"documents": dumps(documents)}
        if still_open:
            values |= {
                "tracking_number": bought.tracking_number,
                "carrier": want.carrier,
                "service": want.service[:64],
            }
            if row is not None and row.state == ParcelState.VOIDED.value:
                values["state"] = ParcelState.EXPECTED.value
        if row is None:
            _insert_parcel(
                tx.conn,
                tenant_id,
                order_ref,
                want,
                values["documents"],
                tracking_number=bought.tracking_number if still_open else "",
            )
        else:
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(**values))
        if not still_open or order is None:
            return {
                "parcel": want.number,
                "carrier": want.carrier,
                "outcome": "voided",
                "label_id": bought.label_id,
            }
        while len(expected) < want.number:
            expected.append({})
        expected[want.number - 1] = {
            **expected[want.number - 1],
            "label": bought.label.model_dump(mode="json"),
            "tracking_number": bought.tracking_number,
            "carrier": want.carrier,
            "service": want.service[:64],
        }
        text = Order.model_validate({**body, "parcels": expected}).model_dump_json()
        tx.conn.execute(update(orders).where(orders.c.id == order.id).values(body=text, updated_at=tx.now))
        record_cloud_event(
            tx,
            order,
            "label_bought",
            {
                "parcel": want.number,
                "carrier": want.carrier,
                "service": want.service,
                "tracking_number": bought.tracking_number,
                "label_id": bought.label_id,
                "weight_g": want.weight_g,
                "cost": bought.cost.model_dump(mode="json") if bought.cost else None,
            },
        )
        tx.append_changes(
            [order_change(order, voided_sync_body(tx, tenant_id, order_ref, text, order.state))]
        )
    return {
        "parcel": want.number,
        "carrier": want.carrier,
        "outcome": "bought",
        "tracking_number": bought.tracking_number,
        "label_id": bought.label_id,
    }


def _insert_parcel(
    conn: Connection, tenant_id: int, order_ref: str, want: Want, documents: str, *, tracking_number: str = ""
) -> None:
    """Add the parcel row a purchase (tried or done) writes to when the edge has reported none yet."""
    conn.execute(
        insert(schema.parcels).values(
            tenant_id=tenant_id,
            order_ref=order_ref,
            number=want.number,
            tracking_number=tracking_number,
            carrier=want.carrier,
            service=want.service[:64],
            documents=documents,
            state=ParcelState.EXPECTED.value,
        )
    )
