"""Waves: a batch of orders released to one packing station so their labels print in one run.

Releasing a wave moves each of its orders from created to released (released orders stay) and
tells the warehouse's agents, in each order's sync body, which wave and station it belongs to and
its position in the print order. Orders that cannot join (unknown, in another warehouse, already
packed, cancelled...) are reported one by one and left out; the rest of the wave goes ahead.

The wave itself is a synced entity too (`ChangeKind.WAVE`, after its orders in the change log):
the station page lists the waves of its station and prints one in a single run. The agent
reports each label through the ordinary edge events (`order_packed` with `wave_id` and
`weight_source: "expected"`, then `label_printed` or `label_held`), so the wave's progress
here is read from its orders' states and their last label event: nothing extra is stored.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud.orders.ingest import order_sync_body
from cloud.orders.order_rows import order_change, order_rows_query
from cloud.orders.states import record_cloud_event
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import InputError, NotFound
from dockside.orders import OrderState
from dockside.sync import ChangeKind, EventKind, WaveBody

__all__ = ["MAX_WAVE_ORDERS", "WAVES_SYNCED_FOR", "get_wave", "recent_wave_bodies", "release_wave"]

MAX_WAVE_ORDERS = 10_000
# A snapshot carries the waves released this recently; older ones are long printed.
WAVES_SYNCED_FOR = timedelta(days=14)
_JOINABLE = frozenset({OrderState.CREATED.value, OrderState.RELEASED.value})
_LABELLED = frozenset({OrderState.LABELLED.value, OrderState.SHIPPED.value})
# The edge events that say where an order's label is; the last one wins.
_LABEL_EVENTS = {
    EventKind.LABEL_HELD.value: "held",
    EventKind.LABEL_PRINTED.value: "printed",
    EventKind.LABEL_FAILED.value: "failed",
    EventKind.JOB_UNKNOWN.value: "unknown",
    EventKind.LABEL_CONFIRMED.value: "printed",
    EventKind.LABEL_HELD_IN_PRINTER.value: "held",
}


def _wave_body(body: str, state: str, wave: dict[str, Any]) -> str:
    text = order_sync_body(body, state)
    return f'{text[:-1]},"wave":{dumps(wave)}}}'


def _wave_sync_body(
    wave_id: int,
    warehouse: str,
    station: str,
    order_refs: Sequence[str],
    created_by: str,
    created_at: datetime,
) -> str:
    """The wave as its warehouse's agents receive it (`ChangeKind.WAVE`, key: the wave number)."""
    return WaveBody(
        wave_id, warehouse, station, tuple(order_refs), created_by, created_at.isoformat()
    ).to_json()


def recent_wave_bodies(
    conn: Connection, warehouse_id: int, warehouse: str, now: datetime
) -> Iterator[tuple[str, str]]:
    """(key, body) of the warehouse's waves released within WAVES_SYNCED_FOR, for a snapshot."""
    waves = schema.waves
    rows = conn.execute(
        select(waves.c.id, waves.c.station, waves.c.order_refs, waves.c.created_by, waves.c.created_at)
        .where(waves.c.warehouse_id == warehouse_id, waves.c.created_at >= now - WAVES_SYNCED_FOR)
        .order_by(waves.c.id)
    )
    for row in rows:
        refs = json.loads(row.order_refs)
        if refs:
            body = _wave_sync_body(row.id, warehouse, row.station, refs, row.created_by, row.created_at)
            yield str(row.id), body


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
                order_rows_query().where(
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
            records.append(order_change(row, _wave_body(row.body, released, wave)))
        if joined:
            # After its orders, so an agent applying the log in order has them all when it sees the wave.
            refs = [row.order_ref for row in joined]
            body = _wave_sync_body(wave_id, warehouse, station, refs, by, tx.now)
            records.append(ChangeRecord(tenant_id, int(wh_id), ChangeKind.WAVE.value, str(wave_id), body))
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
    """A wave with its progress and its orders' states and labels, in print order.

    `state` is `released` (no label yet), `printing` (some labels printed or held) or `printed`
    (every order labelled or cancelled). Each order's `label` is where its label is according to
    the agent's last label event (`held`, `printed`, `failed`, `unknown`) or null.
    """
    waves, wh, orders, events = schema.waves, schema.warehouses, schema.orders, schema.order_events
    with store.read() as conn:
        row = conn.execute(
            select(waves, wh.c.code)
            .join(wh, wh.c.id == waves.c.warehouse_id)
            .where(waves.c.tenant_id == tenant_id, waves.c.id == wave_id)
        ).first()
        if row is None or (warehouses is not None and row.code not in warehouses):
            raise NotFound(f"there is no wave {wave_id}: check the wave number")
        refs: list[str] = json.loads(row.order_refs)
        found = (
            {
                found.order_ref: found
                for found in conn.execute(
                    select(orders.c.id, orders.c.order_ref, orders.c.state).where(
                        orders.c.tenant_id == tenant_id, orders.c.order_ref.in_(refs)
                    )
                )
            }
            if refs
            else {}
        )
        labels: dict[int, str] = {}
        if found:
            for order_id, kind in conn.execute(
                select(events.c.order_id, events.c.kind)
                .where(
                    events.c.order_id.in_([int(o.id) for o in found.values()]),
                    events.c.kind.in_(list(_LABEL_EVENTS)),
                )
                .order_by(events.c.occurred_at, events.c.id)
            ):
                labels[int(order_id)] = _LABEL_EVENTS[kind]
    listed = []
    counts = {"orders": len(refs), "labelled": 0, "held": 0, "cancelled": 0, "waiting": 0}
    for position, ref in enumerate(refs, start=1):
        order = found.get(ref)
        state = order.state if order is not None else None
        label = labels.get(int(order.id)) if order is not None else None
        listed.append({"order_ref": ref, "position": position, "state": state, "label": label})
        if state in _LABELLED:
            counts["labelled"] += 1
        elif state == OrderState.CANCELLED.value:
            counts["cancelled"] += 1
        elif label == "held":
            counts["held"] += 1
        else:
            counts["waiting"] += 1
    if refs and counts["labelled"] + counts["cancelled"] == len(refs):
        state = "printed"
    elif counts["labelled"] or counts["held"]:
        state = "printing"
    else:
        state = "released"
    return {
        "id": row.id,
        "warehouse": row.code,
        "station": row.station,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "state": state,
        "progress": counts,
        "orders": listed,
    }
