"""Waves: a batch of orders released to one packing station so their labels print in one run.

Releasing a wave moves each of its orders from created to released (released orders stay) and
tells the warehouse's agents, in each order's sync body, which wave and station it belongs to and
its position in the print order. Orders that cannot join (unknown, in another warehouse, already
packed, cancelled...) are reported one by one and left out; the rest of the wave goes ahead.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from cloud import schema
from cloud.order_states import record_cloud_event
from cloud.orders import order_sync_body
from cloud.store import ChangeRecord, CloudStore, dumps
from cloud.webhooks import WebhookEvent, emit
from dockside.errors import InputError, NotFound
from dockside.orders import OrderState
from dockside.sync import ChangeKind

__all__ = ["MAX_WAVE_ORDERS", "get_wave", "release_wave"]

MAX_WAVE_ORDERS = 10_000
_JOINABLE = frozenset({OrderState.CREATED.value, OrderState.RELEASED.value})


def _wave_body(body: str, state: str, wave: dict[str, Any]) -> str:
    text = order_sync_body(body, state)
    return f'{text[:-1]},"wave":{dumps(wave)}}}'


def release_wave(
    store: CloudStore,
    tenant_id: int,
    *,
    warehouse: str,
    station: str,
    order_refs: Sequence[str],
    by: str,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Release `order_refs` (in print order) to `station`; returns the wave and per-order errors."""
    if not order_refs or len(order_refs) > MAX_WAVE_ORDERS:
        raise InputError(f"a wave has 1 to {MAX_WAVE_ORDERS:,} orders: split it into several waves")
    if len(set(order_refs)) != len(order_refs):
        raise InputError("an order appears twice in the wave: list each order once, in print order")
    if warehouses is not None and warehouse not in warehouses:
        raise NotFound(f"there is no warehouse {warehouse!r}: create it with POST /api/v1/warehouses first")
    table, wh, st = schema.orders, schema.warehouses, schema.stations
    errors: list[dict[str, Any]] = []
    with store.write() as tx:
        tx.lock_clock()
        wh_id = tx.conn.execute(
            select(wh.c.id).where(wh.c.tenant_id == tenant_id, wh.c.code == warehouse)
        ).scalar()
        if wh_id is None:
            raise NotFound(
                f"there is no warehouse {warehouse!r}: create it with POST /api/v1/warehouses first"
            )
        if (
            tx.conn.execute(select(st.c.id).where(st.c.warehouse_id == wh_id, st.c.code == station)).first()
            is None
        ):
            raise NotFound(f"warehouse {warehouse} has no station {station!r}: add the station first")
        rows = {
            row.order_ref: row
            for start in range(0, len(order_refs), 2000)
            for row in tx.conn.execute(
                select(
                    table.c.id,
                    table.c.tenant_id,
                    table.c.warehouse_id,
                    table.c.order_ref,
                    table.c.state,
                    table.c.body,
                ).where(
                    table.c.tenant_id == tenant_id,
                    table.c.order_ref.in_(list(order_refs[start : start + 2000])),
                )
            )
        }
        joined = []
        for index, ref in enumerate(order_refs):
            row = rows.get(ref)
            if row is None or int(row.warehouse_id) != int(wh_id):
                errors.append(
                    {
                        "index": index,
                        "order_ref": ref,
                        "code": "not_found",
                        "message": f"there is no order {ref!r} in {warehouse}",
                    }
                )
            elif row.state not in _JOINABLE:
                errors.append(
                    {
                        "index": index,
                        "order_ref": ref,
                        "code": "illegal_transition",
                        "message": f"order {ref} is {row.state} and cannot join a wave: "
                        "only created or released orders can",
                    }
                )
            else:
                joined.append(row)
        wave_id = int(
            tx.conn.execute(
                insert(schema.waves)
                .values(
                    tenant_id=tenant_id,
                    warehouse_id=wh_id,
                    station=station,
                    order_refs=dumps([row.order_ref for row in joined]),
                    created_by=by,
                    created_at=tx.now,
                )
                .returning(schema.waves.c.id)
            ).scalar_one()
        )
        released = OrderState.RELEASED.value
        records = []
        moved = []
        for position, row in enumerate(joined, start=1):
            wave = {"id": wave_id, "station": station, "position": position, "size": len(joined)}
            if row.state != released:
                tx.conn.execute(
                    update(table).where(table.c.id == row.id).values(state=released, updated_at=tx.now)
                )
                moved.append(
                    {
                        "order_ref": row.order_ref,
                        "warehouse": warehouse,
                        "from": row.state,
                        "to": released,
                        "by": by,
                    }
                )
            record_cloud_event(tx, row, "wave_released", {"by": by, **wave}, station=station)
            records.append(
                ChangeRecord(
                    tenant_id,
                    int(wh_id),
                    ChangeKind.ORDER.value,
                    row.order_ref,
                    _wave_body(row.body, released, wave),
                )
            )
        tx.append_changes(records)
        emit(tx, tenant_id, WebhookEvent.ORDER_STATE_CHANGED, moved)
    return {
        "id": wave_id,
        "warehouse": warehouse,
        "station": station,
        "order_refs": [row.order_ref for row in joined],
        "errors": errors,
    }


def get_wave(
    store: CloudStore, tenant_id: int, wave_id: int, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """A wave with its orders' current states, in print order."""
    waves, wh, orders = schema.waves, schema.warehouses, schema.orders
    with store.read() as conn:
        row = conn.execute(
            select(waves, wh.c.code)
            .join(wh, wh.c.id == waves.c.warehouse_id)
            .where(waves.c.tenant_id == tenant_id, waves.c.id == wave_id)
        ).first()
        if row is None or (warehouses is not None and row.code not in warehouses):
            raise NotFound(f"there is no wave {wave_id}: check the wave number")
        refs: list[str] = json.loads(row.order_refs)
        states = (
            dict(
                conn.execute(
                    select(orders.c.order_ref, orders.c.state).where(
                        orders.c.tenant_id == tenant_id, orders.c.order_ref.in_(refs)
                    )
                ).all()
            )
            if refs
            else {}
        )
    return {
        "id": row.id,
        "warehouse": row.code,
        "station": row.station,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "orders": [
            {"order_ref": ref, "position": i, "state": states.get(ref)} for i, ref in enumerate(refs, start=1)
        ],
    }
