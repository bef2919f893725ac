"""Parcels left on the dock: one exception for each parcel labelled but not handed over to its
carrier by the end of the next day (`overdue_parcels`), looked for by a background scanner
(`run_overdue_parcels`, one per cloud process).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.orders.parcels import ParcelState
from cloud.storage import schema
from cloud.storage.periodic import run_every
from cloud.storage.store import CloudStore, utcnow
from dockside.orders import OrderState

__all__ = ["OVERDUE_INTERVAL_S", "overdue_parcels", "run_overdue_parcels"]


# How often the cloud looks for parcels left on the dock.
OVERDUE_INTERVAL_S = 600.0
_OVERDUE_BATCH = 1_000


def _overdue_key(parcel_id: int) -> str:
    # One exception per parcel row: the key stands where an edge event's id would.
    return f"parcel-overdue:{parcel_id}"


def overdue_parcels(store: CloudStore, now: datetime | None = None) -> int:
    """Open one exception per parcel labelled but not on a handed-over manifest by the end of the
    next day (UTC) after it was labelled; returns how many it opened (none for a parcel twice)."""
    moment = now or utcnow()
    # Labelled on day D: overdue from midnight that ends day D + 1.
    cutoff = moment.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    parcels, orders, exceptions = schema.parcels, schema.orders, schema.order_exceptions
    opened = 0
    last = 0
    while True:
        with store.write() as tx:
            rows = tx.conn.execute(
                select(
                    parcels.c.id,
                    parcels.c.tenant_id,
                    parcels.c.order_ref,
                    parcels.c.number,
                    parcels.c.tracking_number,
                    parcels.c.carrier,
                    parcels.c.state,
                    parcels.c.manifest_id,
                    parcels.c.labelled_at,
                    orders.c.warehouse_id,
                )
                .join(
                    orders,
                    and_(
                        orders.c.tenant_id == parcels.c.tenant_id, orders.c.order_ref == parcels.c.order_ref
                    ),
                )
                .where(
                    parcels.c.id > last,
                    or_(
                        parcels.c.state == ParcelState.LABELLED.value,
                        parcels.c.state == ParcelState.MANIFESTED.value,
                    ),
                    parcels.c.labelled_at < cutoff,
                    # A cancelled order's parcel is not waiting for a driver.
                    orders.c.state != OrderState.CANCELLED.value,
                )
                .order_by(parcels.c.id)
                .limit(_OVERDUE_BATCH)
            ).all()
            if not rows:
                return opened
            last = int(rows[-1].id)
            # Replicas may scan at once: the clock's lock makes "seen" then "open" one step.
            tx.lock_clock()
            keys = [_overdue_key(int(row.id)) for row in rows]
            seen = set(
                tx.conn.execute(
                    select(exceptions.c.event_id).where(
                        exceptions.c.kind == ExceptionKind.PARCEL_OVERDUE.value,
                        schema.one_of(exceptions.c.event_id, keys, tx.conn.dialect),
                    )
                ).scalars()
            )
            for row, key in zip(rows, keys, strict=True):
                if key in seen:
                    continue
                where = (
                    f"on manifest {row.manifest_id} not handed over" if row.manifest_id else "on no manifest"
                )
                open_exception(
                    tx,
                    tenant_id=int(row.tenant_id),
                    warehouse_id=int(row.warehouse_id),
                    order_ref=row.order_ref,
                    kind=ExceptionKind.PARCEL_OVERDUE,
                    message=(
                        f"parcel {row.number} of order {row.order_ref} ({row.carrier or 'no carrier'} "
                        f"{row.tracking_number or 'no tracking number'}) was labelled "
                        f"{row.labelled_at:%Y-%m-%d} and is still {where}: find it on the dock and "
                        "hand it to the carrier, or void its label"
                    ),
                    detail={
                        "parcel": int(row.number),
                        "tracking_number": row.tracking_number,
                        "carrier": row.carrier,
                        "state": row.state,
                        "manifest_id": row.manifest_id,
                        "labelled_at": row.labelled_at.isoformat(),
                    },
                    event_id=key,
                )
                opened += 1
            if len(rows) < _OVERDUE_BATCH:
                return opened


async def run_overdue_parcels(
    store: CloudStore, stop: asyncio.Event, *, interval_s: float = OVERDUE_INTERVAL_S
) -> None:
    """Look for overdue parcels every `interval_s` until `stop` is set (one scanner per process)."""
    await run_every(overdue_parcels, store, stop, interval_s=interval_s, what="overdue parcel scan")
