"""Voiding a parcel's label from the cloud, and the tracking number that goes with it.

    POST /api/v1/orders/{ref}/parcels/{n}/void {"reason"}

A void takes the parcel's label out of use for good: the parcel row becomes `voided`, its
tracking number is recorded `voided` in tracking_numbers (a later NUMBER_USED of it opens a
`number_reused` exception), a label the cloud bought from a carrier API is marked for voiding at
that API (the void loop of cloud.shipping.carrier_voids calls it, outside any write transaction;
the caller may run it at once), and the OMS's label for that parcel is taken off the order.
The order change tells the warehouse's agents, with the order's voided parcels spliced into its
sync body as `"voided_parcels": [{"parcel": n, "tracking_number": "<the voided number>"}, ...]`
(at most MAX_VOIDED_PARCELS, by parcel number): the number says WHICH label was voided, so an
agent that relabelled the parcel since never voids its new label on a stale body; its next pack
of a parcel whose current label carries that number prints a new label (relabel), never the
voided one again. tracking_number is "" when the voided label had none. The same happens,
without calling back to the agent, when an agent reports `parcel_voided` (cloud.sync.shipping_events
calls `void_number`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud.orders.bought_labels import void_bought_labels
from cloud.orders.ingest import order_sync_body
from cloud.orders.order_rows import order_change, order_in_scope
from cloud.orders.parcels import ParcelState
from cloud.orders.states import record_cloud_event
from cloud.storage import schema
from cloud.storage.store import CloudStore, WriteTransaction, dumps
from dockside.errors import Conflict, NotFound
from dockside.orders import Order, OrderState

__all__ = [
    "MAX_VOIDED_PARCELS",
    "ParcelNotVoidable",
    "void_number",
    "void_parcel",
    "voided_parcels",
    "voided_sync_body",
    "with_voided_parcels",
]

MAX_VOIDED_PARCELS = 99  # as many as an order's parcels (dockside.orders)


class ParcelNotVoidable(Conflict):
    """The parcel is on its way (manifested or shipped): its label can no longer be voided here."""

    code = "parcel_not_voidable"
    http_status = 409


def void_number(
    tx: WriteTransaction,
    tenant_id: int,
    carrier: str,
    tracking_number: str,
    *,
    order_ref: str,
    parcel: int,
    agent_id: str | None = None,
) -> None:
    """Record `tracking_number` of `carrier` voided, never to be used again (in the caller's
    transaction). A number recorded used becomes voided; an unknown one is recorded voided."""
    if not tracking_number:
        return
    numbers = schema.tracking_numbers
    seen = tx.conn.execute(
        select(numbers.c.id, numbers.c.state).where(
            numbers.c.tenant_id == tenant_id,
            numbers.c.carrier == carrier[:32],
            numbers.c.tracking_number == tracking_number,
        )
    ).first()
    if seen is None:
        tx.conn.execute(
            insert(numbers).values(
                tenant_id=tenant_id,
                carrier=carrier[:32],
                tracking_number=tracking_number,
                state="voided",
                order_ref=order_ref,
                parcel=parcel,
                agent_id=agent_id,
                at=tx.now,
            )
        )
    elif seen.state != "voided":
        tx.conn.execute(update(numbers).where(numbers.c.id == seen.id).values(state="voided", at=tx.now))


def voided_parcels(
    conn: Connection, tenant_id: int, order_refs: Collection[str]
) -> dict[str, list[dict[str, Any]]]:
    """`{"parcel", "tracking_number"}` of each voided parcel of these orders (the number on the
    label voided), by parcel number, at most MAX_VOIDED_PARCELS an order; orders without any left out."""
    if not order_refs:
        return {}
    parcels = schema.parcels
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(
        select(parcels.c.order_ref, parcels.c.number, parcels.c.tracking_number)
        .where(
            parcels.c.tenant_id == tenant_id,
            parcels.c.order_ref.in_(sorted(set(order_refs))),
            parcels.c.state == ParcelState.VOIDED.value,
        )
        .order_by(parcels.c.order_ref, parcels.c.number)
    ):
        listed = found.setdefault(str(row.order_ref), [])
        if len(listed) < MAX_VOIDED_PARCELS:
            listed.append({"parcel": int(row.number), "tracking_number": str(row.tracking_number or "")})
    return found


def with_voided_parcels(sync_body: str, voided: list[dict[str, Any]]) -> str:
    """An order's sync body (`order_sync_body`'s text) with `"voided_parcels"` spliced in."""
    return f'{sync_body[:-1]},"voided_parcels":{dumps(voided[:MAX_VOIDED_PARCELS])}}}'


def voided_sync_body(tx: WriteTransaction, tenant_id: int, order_ref: str, body: str, state: str) -> str:
    """The order's sync body with `"voided_parcels"` (see `voided_parcels`; [] for none)."""
    voided = voided_parcels(tx.conn, tenant_id, [order_ref]).get(order_ref, [])
    return with_voided_parcels(order_sync_body(body, state), voided)


def void_parcel(
    store: CloudStore,
    tenant_id: int,
    order_ref: str,
    number: int,
    reason: str,
    *,
    by: str,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Void parcel `number`'s label; {"order_ref", "parcel", "tracking_number", "carrier", "changed",
    "carrier_void": bool} (whether a bought label waits to be voided at the carrier's API).

    NotFound when there is no such order or the parcel has no label (printed or sent by the OMS);
    ParcelNotVoidable when it is manifested or shipped. A second void changes nothing.
    """
    orders, parcels = schema.orders, schema.parcels
    with store.write() as tx:
        tx.lock_clock()
        order = order_in_scope(tx.conn, tenant_id, order_ref, warehouses)
        row = tx.conn.execute(
            select(parcels).where(
                parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref, parcels.c.number == number
            )
        ).first()
        body = json.loads(order.body)
        expected = list(body.get("parcels") or [])
        oms = expected[number - 1] if number <= len(expected) else {}
        oms_label = bool(oms.get("label") or oms.get("tracking_number"))
        if row is not None and row.state in (ParcelState.MANIFESTED.value, ParcelState.SHIPPED.value):
            raise ParcelNotVoidable(
                f"parcel {number} of order {order_ref} is {row.state}"
                + (f" on manifest {row.manifest_id}" if row.manifest_id else "")
                + ": it has left or is about to leave with the carrier; ask the carrier to stop it"
            )
        already = row is not None and row.state == ParcelState.VOIDED.value
        if row is not None and already and not oms_label:
            return {
                "order_ref": order_ref,
                "parcel": number,
                "tracking_number": row.tracking_number,
                "carrier": row.carrier,
                "changed": False,
                "carrier_void": False,
            }
        if row is None and not oms_label:
            raise NotFound(
                f"parcel {number} of order {order_ref} has no label to void: nothing was printed for it "
                "and the OMS sent none"
            )
        tracking, carrier = str(oms.get("tracking_number") or ""), str(oms.get("carrier") or "")
        if row is not None and not already:
            tracking, carrier = row.tracking_number or tracking, row.carrier or carrier
        documents: list[dict[str, Any]] = json.loads(row.documents) if row is not None else []
        carrier_void = void_bought_labels(documents)
        if row is None:
            tx.conn.execute(
                insert(parcels).values(
                    tenant_id=tenant_id,
                    order_ref=order_ref,
                    number=number,
                    tracking_number=tracking,
                    carrier=carrier[:32],
                    service=str(oms.get("service") or "")[:64],
                    documents="[]",
                    state=ParcelState.VOIDED.value,
                )
            )
        else:
            # The row names the number voided last (an OMS label put on a parcel voided before).
            voided_number = {"tracking_number": tracking, "carrier": carrier[:32]} if tracking else {}
            tx.conn.execute(
                update(parcels)
                .where(parcels.c.id == row.id)
                .values(state=ParcelState.VOIDED.value, documents=dumps(documents), **voided_number)
            )
        void_number(tx, tenant_id, carrier, tracking, order_ref=order_ref, parcel=number)
        if oms_label:
            # The voided label (and its number) must never print again: off the order it goes.
            expected[number - 1] = {
                key: value for key, value in oms.items() if key not in ("label", "tracking_number")
            }
            body["parcels"] = expected
        text = Order.model_validate(body).model_dump_json() if oms_label else order.body
        if oms_label:
            tx.conn.execute(
                update(orders).where(orders.c.id == order.id).values(body=text, updated_at=tx.now)
            )
        record_cloud_event(
            tx,
            order,
            "parcel_voided",
            {"by": by, "parcel": number, "tracking_number": tracking, "carrier": carrier, "reason": reason},
        )
        tx.append_changes(
            [
                order_change(
                    order, voided_sync_body(tx, tenant_id, order_ref, text, OrderState(order.state).value)
                )
            ]
        )
    return {
        "order_ref": order_ref,
        "parcel": number,
        "tracking_number": tracking,
        "carrier": carrier,
        "changed": True,
        "carrier_void": carrier_void,
    }
