"""An order's row as the cloud's order writers read it, and the change that sends it to its agents.

Every write that reworks one order (a state change, an erasure, the OMS's label, a void, a bought
label, a relabel) reads the same row: id, tenant, warehouse, ref, state, body and the warehouse's
code, the code being what a caller's warehouse scope is checked against. The caller owns the
transaction and its locking (`tx.lock_clock()` first); these only read and build.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from cloud.storage import schema
from cloud.storage.store import ChangeRecord
from dockside.errors import NotFound
from dockside.sync import ChangeKind

__all__ = ["order_change", "order_in_scope", "order_row", "order_row_query", "order_rows_query"]

_NO_ORDER_FIX = "check the reference or ingest the order first"


def order_rows_query() -> Select[Any]:
    """The select of orders' rows (id, tenant_id, warehouse_id, order_ref, state, body, code), for
    the caller to narrow with `.where(...)`."""
    orders, warehouses = schema.orders, schema.warehouses
    return select(
        orders.c.id,
        orders.c.tenant_id,
        orders.c.warehouse_id,
        orders.c.order_ref,
        orders.c.state,
        orders.c.body,
        warehouses.c.code,
    ).join(warehouses, warehouses.c.id == orders.c.warehouse_id)


def order_row_query(tenant_id: int, order_ref: str) -> Select[Any]:
    """The select of one order's row (see `order_rows_query`)."""
    orders = schema.orders
    return order_rows_query().where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)


def order_row(conn: Connection, tenant_id: int, order_ref: str) -> Row[Any] | None:
    """One order's row (see `order_row_query`), or None when the tenant has no such order."""
    return conn.execute(order_row_query(tenant_id, order_ref)).first()


def order_in_scope(
    conn: Connection,
    tenant_id: int,
    order_ref: str,
    warehouses: Collection[str] | None,
    *,
    fix: str = _NO_ORDER_FIX,
) -> Row[Any]:
    """One order's row for a caller limited to `warehouses` (None: all of the tenant's).

    NotFound, saying `fix`, when there is no such order or it is in a warehouse outside the scope:
    an order the caller may not see is answered as one that does not exist.
    """
    order = order_row(conn, tenant_id, order_ref)
    if order is None or (warehouses is not None and order.code not in warehouses):
        raise NotFound(f"there is no order {order_ref[:64]!r}: {fix}")
    return order


def order_change(order: Any, sync_body: str) -> ChangeRecord:
    """The change-log record that sends an order (a row with tenant_id, warehouse_id, order_ref)
    to its warehouse's agents with `sync_body`."""
    return ChangeRecord(
        int(order.tenant_id), int(order.warehouse_id), ChangeKind.ORDER.value, order.order_ref, sync_body
    )
