"""Manifests: a carrier's labelled parcels of one warehouse, closed for its driver, then handed over.

    POST /api/v1/warehouses/{wh}/manifests {"carrier"}   every labelled, not yet manifested parcel
                                                          of that carrier there -> one manifest
    GET  /api/v1/manifests/{id}  (.pdf for the driver, .csv for the carrier)
    POST /api/v1/manifests/{id}/handover                   its parcels and their orders shipped

Closing is one transaction: the parcels move from `labelled` to `manifested` with the
manifest's id, or nothing moves; with nothing to close the answer is 409 `manifest_empty`. The
handover marks the manifest's parcels `shipped`, and an order whose every parcel is shipped (or
voided) goes to `shipped` through the order state machine (cloud.orders.states) with an
`order.shipped` webhook carrying its tracking numbers. Handing over again changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from cloud.orders.states import IllegalTransition, change_state
from cloud.storage import schema
from cloud.storage.store import CloudStore
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import Conflict, NotFound
from dockside.orders import OrderState

__all__ = [
    "close_manifest",
    "get_manifest",
    "handover_manifest",
    "manifest_csv",
]

_LABELLED = "labelled"
_MANIFESTED = "manifested"
_SHIPPED = "shipped"
_VOIDED = "voided"
CSV_COLUMNS = ("manifest_id", "order_ref", "parcel", "tracking_number", "carrier", "service", "weight_g")


def _no_warehouse(code: str) -> NotFound:
    return NotFound(f"there is no warehouse {code[:32]!r}: create it with POST /api/v1/warehouses first")


def _no_manifest(manifest_id: int) -> NotFound:
    return NotFound(f"there is no manifest {manifest_id}: check the manifest number")


def _parcels(conn: Connection, manifest_id: int) -> list[dict[str, Any]]:
    parcels = schema.parcels
    rows = conn.execute(
        select(parcels)
        .where(parcels.c.manifest_id == manifest_id)
        .order_by(parcels.c.order_ref, parcels.c.number)
    )
    return [
        {
            "order_ref": row.order_ref,
            "number": int(row.number),
            "tracking_number": row.tracking_number,
            "carrier": row.carrier,
            "service": row.service,
            "weight_g": None if row.weight_g is None else int(row.weight_g),
            "dimensions_mm": None if row.dimensions_mm is None else json.loads(row.dimensions_mm),
            "state": row.state,
        }
        for row in rows
    ]


def _manifest(conn: Connection, tenant_id: int, manifest_id: int, warehouses: Collection[str] | None) -> Any:
    manifests, wh = schema.manifests, schema.warehouses
    row = conn.execute(
        select(manifests, wh.c.code.label("warehouse"), wh.c.name.label("warehouse_name"))
        .join(wh, wh.c.id == manifests.c.warehouse_id)
        .where(manifests.c.tenant_id == tenant_id, manifests.c.id == manifest_id)
    ).first()
    if row is None or (warehouses is not None and row.warehouse not in warehouses):
        raise _no_manifest(manifest_id)
    return row


def _body(conn: Connection, row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "warehouse": row.warehouse,
        "warehouse_name": row.warehouse_name,
        "carrier": row.carrier,
        "parcel_count": int(row.parcel_count),
        "total_weight_g": int(row.total_weight_g),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "handed_over_at": None if row.handed_over_at is None else row.handed_over_at.isoformat(),
        "parcels": _parcels(conn, int(row.id)),
    }


def close_manifest(
    store: CloudStore,
    tenant_id: int,
    warehouse: str,
    carrier: str,
    *,
    by: str,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Close every labelled, unmanifested parcel of `carrier` at `warehouse` into a new manifest.

    Conflict (409, code `manifest_empty`) when there is none; NotFound for an unknown (or unseen) warehouse.
    """
    if warehouses is not None and warehouse not in warehouses:
        raise _no_warehouse(warehouse)
    parcels, orders, wh, manifests = schema.parcels, schema.orders, schema.warehouses, schema.manifests
    with store.write() as tx:
        tx.lock_clock()  # two closes of one carrier at once: the second sees the parcels taken
        wh_id = tx.conn.execute(
            select(wh.c.id).where(wh.c.tenant_id == tenant_id, wh.c.code == warehouse)
        ).scalar()
        if wh_id is None:
            raise _no_warehouse(warehouse)
        open_parcels = tx.conn.execute(
            select(parcels.c.id, parcels.c.weight_g)
            .join(
                orders,
                (orders.c.tenant_id == parcels.c.tenant_id) & (orders.c.order_ref == parcels.c.order_ref),
            )
            .where(
                parcels.c.tenant_id == tenant_id,
                orders.c.warehouse_id == wh_id,
                parcels.c.carrier == carrier,
                parcels.c.state == _LABELLED,
                parcels.c.manifest_id.is_(None),
            )
        ).all()
        if not open_parcels:
            raise Conflict(
                f"warehouse {warehouse} has no labelled parcel of carrier {carrier[:32]!r} that is not on a "
                "manifest yet: there is nothing to close (check the carrier code, or label parcels first)",
                code="manifest_empty",
            )
        manifest_id = int(
            tx.conn.execute(
                insert(manifests)
                .values(
                    tenant_id=tenant_id,
                    warehouse_id=wh_id,
                    carrier=carrier,
                    parcel_count=len(open_parcels),
                    total_weight_g=sum(int(p.weight_g or 0) for p in open_parcels),
                    created_by=by,
                    created_at=tx.now,
                    handed_over_at=None,
                )
                .returning(manifests.c.id)
            ).scalar_one()
        )
        ids = [int(p.id) for p in open_parcels]
        for start in range(0, len(ids), 1000):
            moved = tx.conn.execute(
                update(parcels)
                .where(
                    parcels.c.id.in_(ids[start : start + 1000]),
                    parcels.c.state == _LABELLED,
                    parcels.c.manifest_id.is_(None),
                )
                .values(state=_MANIFESTED, manifest_id=manifest_id)
            ).rowcount
            if moved != len(ids[start : start + 1000]):
                raise RuntimeError("parcels changed while the manifest closed them")
        return _body(tx.conn, _manifest(tx.conn, tenant_id, manifest_id, None))


def get_manifest(
    store: CloudStore, tenant_id: int, manifest_id: int, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """A manifest with its parcels in order-reference order."""
    with store.read() as conn:
        return _body(conn, _manifest(conn, tenant_id, manifest_id, warehouses))


def manifest_csv(manifest: dict[str, Any]) -> str:
    """The manifest as CSV for the carrier: a header row, then one row per parcel."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for parcel in manifest["parcels"]:
        writer.writerow(
            [
                manifest["id"],
                _cell(parcel["order_ref"]),
                parcel["number"],
                _cell(parcel["tracking_number"]),
                _cell(parcel["carrier"]),
                _cell(parcel["service"]),
                "" if parcel["weight_g"] is None else parcel["weight_g"],
            ]
        )
    return out.getvalue()


def _cell(text: str) -> str:
    # A cell a spreadsheet would run as a formula is written as text (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def handover_manifest(
    store: CloudStore,
    tenant_id: int,
    manifest_id: int,
    *,
    by: str,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """The driver took the manifest's parcels: they are shipped, and so is every order whose parcels
    all are. Idempotent: a second handover changes nothing and answers `changed: false`.

    Orders that do not ship yet are listed in `orders_not_shipped` with the reason: a parcel of
    theirs not handed over, an expected parcel not labelled (the order is still `packed`), or a
    state the state machine will not ship from (cancelled meanwhile).
    """
    parcels, manifests = schema.parcels, schema.manifests
    with store.unit_of_work():
        with store.write() as tx:
            tx.lock_clock()
            row = _manifest(tx.conn, tenant_id, manifest_id, warehouses)
            if row.handed_over_at is not None:
                return {
                    **_body(tx.conn, row),
                    "changed": False,
                    "orders_shipped": [],
                    "orders_not_shipped": [],
                }
            tx.conn.execute(
                update(manifests).where(manifests.c.id == manifest_id).values(handed_over_at=tx.now)
            )
            tx.conn.execute(
                update(parcels)
                .where(parcels.c.manifest_id == manifest_id, parcels.c.state == _MANIFESTED)
                .values(state=_SHIPPED)
            )
            refs = sorted(
                str(ref)
                for ref in tx.conn.execute(
                    select(parcels.c.order_ref).where(parcels.c.manifest_id == manifest_id).distinct()
                ).scalars()
            )
            waiting = set()
            if refs:
                waiting = {
                    str(ref)
                    for ref in tx.conn.execute(
                        select(parcels.c.order_ref)
                        .where(
                            parcels.c.tenant_id == tenant_id,
                            parcels.c.order_ref.in_(refs),
                            parcels.c.state.not_in([_SHIPPED, _VOIDED]),
                        )
                        .group_by(parcels.c.order_ref)
                        .having(func.count() > 0)
                    ).scalars()
                }
            orders = schema.orders
            order_states = (
                dict(
                    tx.conn.execute(
                        select(orders.c.order_ref, orders.c.state).where(
                            orders.c.tenant_id == tenant_id, orders.c.order_ref.in_(refs)
                        )
                    ).all()
                )
                if refs
                else {}
            )
        shipped: list[str] = []
        not_shipped: list[dict[str, str]] = []
        for ref in refs:
            state = order_states.get(ref)
            if ref in waiting:
                not_shipped.append(
                    {
                        "order_ref": ref,
                        "message": f"order {ref} has parcels not yet handed over: it ships with them",
                    }
                )
                continue
            if state == OrderState.PACKED.value:
                # Packed, not labelled: the order still expects a parcel nobody labelled yet.
                not_shipped.append(
                    {
                        "order_ref": ref,
                        "message": f"order {ref} is packed but not every parcel it expects is labelled: "
                        "it ships once they are labelled and handed over, or once the packer closes it",
                    }
                )
                continue
            if state == OrderState.SHIPPED.value:
                continue
            try:
                change_state(
                    store,
                    tenant_id,
                    ref,
                    OrderState.SHIPPED,
                    by=by,
                    reason=f"manifest {manifest_id} handed over",
                )
            except IllegalTransition as exc:
                not_shipped.append({"order_ref": ref, "message": exc.message})
            else:
                shipped.append(ref)
        with store.write() as tx:
            row = _manifest(tx.conn, tenant_id, manifest_id, None)
            body = _body(tx.conn, row)
            emit(
                tx,
                tenant_id,
                WebhookEvent.ORDER_SHIPPED,
                [_shipped_payload(tx.conn, tenant_id, ref, body) for ref in shipped],
            )
    return {**body, "changed": True, "orders_shipped": shipped, "orders_not_shipped": not_shipped}


def _shipped_payload(
    conn: Connection, tenant_id: int, order_ref: str, manifest: dict[str, Any]
) -> dict[str, Any]:
    parcels = schema.parcels
    rows = conn.execute(
        select(parcels)
        .where(
            parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref, parcels.c.state == _SHIPPED
        )
        .order_by(parcels.c.number)
    )
    listed = [
        {
            "number": int(row.number),
            "tracking_number": row.tracking_number,
            "carrier": row.carrier,
            "service": row.service,
            "weight_g": None if row.weight_g is None else int(row.weight_g),
        }
        for row in rows
    ]
    return {
        "order_ref": order_ref,
        "warehouse": manifest["warehouse"],
        "carrier": manifest["carrier"],
        "manifest_id": manifest["id"],
        "shipped_at": manifest["handed_over_at"],
        "tracking_numbers": [parcel["tracking_number"] for parcel in listed if parcel["tracking_number"]],
        "parcels": listed,
    }
