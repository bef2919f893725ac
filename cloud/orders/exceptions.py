"""The exception center: conflicts a person must decide, with an owner and a status.

    open ──► acknowledged ──► resolved (with a comment; final)
      └────────────────────────┘

Exceptions open in the same transaction as the edge event that reveals them (a parcel packed
after its order was cancelled, a weight outside the ruleset's tolerance, a label job whose
printing is unknown), so a conflict is never recorded without its exception.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, insert, select, update

from cloud.storage import schema
from cloud.storage.store import CloudStore, WriteTransaction, dumps
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import DocksideError, InputError, NotFound

__all__ = [
    "ExceptionClosed",
    "ExceptionKind",
    "ExceptionStatus",
    "acknowledge_exception",
    "assign_exception",
    "get_exception",
    "list_exceptions",
    "open_exception",
    "resolve_exception",
]

MAX_LISTED = 1000


class ExceptionKind(StrEnum):
    """Why an exception was opened."""

    PACKED_AFTER_CANCEL = "packed_after_cancel"
    WEIGHT_OUT_OF_TOLERANCE = "weight_out_of_tolerance"
    JOB_UNKNOWN = "job_unknown"
    RAISED_AT_EDGE = "raised_at_edge"
    # Unusual activity (cloud/access/alerts.py): a new sign-in address, a burst of reprints, ...
    ACCESS_ALERT = "access_alert"
    # A parcel labelled but not on a handed-over manifest by the end of the next day
    # (cloud/orders/overdue_parcels.py).
    PARCEL_OVERDUE = "parcel_overdue"
    # Tracking numbers (cloud/shipping/leases.py): one reported used twice, or outside its agent's
    # lease; a carrier's free numbers below its low-water mark.
    NUMBER_REUSED = "number_reused"
    NUMBERS_LOW = "numbers_low"
    # Labels bought from a carrier API (cloud/shipping/labels_bought.py): a purchase that failed for
    # good, a void the API declined or never answered, a label bought again that must be reprinted.
    LABEL_PURCHASE_FAILED = "label_purchase_failed"
    LABEL_VOID_FAILED = "label_void_failed"
    LABEL_REPRINT_NEEDED = "label_reprint_needed"


class ExceptionStatus(StrEnum):
    """Where an exception is in its handling."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ExceptionClosed(DocksideError):
    """The exception is resolved already."""

    code = "exception_resolved"
    http_status = 409


def open_exception(
    tx: WriteTransaction,
    *,
    tenant_id: int,
    warehouse_id: int | None,
    order_ref: str | None,
    kind: ExceptionKind,
    message: str,
    detail: dict[str, Any],
    event_id: str | None = None,
) -> int:
    """Record a new open exception inside the caller's transaction; returns its id.

    Without a warehouse (`warehouse_id` None) the exception is tenant-wide: only callers that
    see the whole tenant see it.
    """
    exception_id = int(
        tx.conn.execute(
            insert(schema.order_exceptions)
            .values(
                tenant_id=tenant_id,
                warehouse_id=warehouse_id,
                order_ref=order_ref,
                kind=kind.value,
                status=ExceptionStatus.OPEN.value,
                message=message,
                detail=dumps(detail),
                event_id=event_id,
                opened_at=tx.now,
                updated_at=tx.now,
            )
            .returning(schema.order_exceptions.c.id)
        ).scalar_one()
    )
    payload = {"id": exception_id, "kind": kind.value, "order_ref": order_ref, "message": message}
    emit(tx, tenant_id, WebhookEvent.EXCEPTION_OPENED, [payload])
    return exception_id


def _query(tenant_id: int, warehouses: Collection[str] | None) -> Select[Any]:
    table = schema.order_exceptions
    query = (
        select(table, schema.warehouses.c.code.label("warehouse"))
        .outerjoin(schema.warehouses, schema.warehouses.c.id == table.c.warehouse_id)
        .where(table.c.tenant_id == tenant_id)
    )
    if warehouses is not None:
        # NULL (tenant-wide) is in no list: a scoped caller sees only its warehouses' exceptions.
        query = query.where(schema.warehouses.c.code.in_(sorted(warehouses)))
    return query


def _body(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "warehouse": row["warehouse"],
        "order_ref": row["order_ref"],
        "assignee": row["assignee"],
        "message": row["message"],
        "detail": json.loads(row["detail"]),
        "event_id": row["event_id"],
        "comment": row["comment"],
        "opened_at": row["opened_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
    }


def list_exceptions(
    store: CloudStore,
    tenant_id: int,
    *,
    warehouses: Collection[str] | None = None,
    status: str | None = None,
    kind: str | None = None,
    warehouse: str | None = None,
    order_ref: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Exceptions in the caller's scope, newest first, filtered by any of the given fields."""
    table = schema.order_exceptions
    query = _query(tenant_id, warehouses)
    for column, value in (
        (table.c.status, status),
        (table.c.kind, kind),
        (schema.warehouses.c.code, warehouse),
        (table.c.order_ref, order_ref),
        (table.c.assignee, assignee),
    ):
        if value is not None:
            query = query.where(column == value)
    with store.read() as conn:
        rows = conn.execute(query.order_by(table.c.id.desc()).limit(min(limit, MAX_LISTED))).mappings()
        return [_body(row) for row in rows]


def _row(tx: WriteTransaction | None, conn: Any, tenant_id: int, exception_id: int, scope: Any) -> Any:
    row = (
        conn.execute(_query(tenant_id, scope).where(schema.order_exceptions.c.id == exception_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"there is no exception {exception_id}: list exceptions to find its id")
    return row


def get_exception(
    store: CloudStore, tenant_id: int, exception_id: int, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """One exception in the caller's scope."""
    with store.read() as conn:
        return _body(_row(None, conn, tenant_id, exception_id, warehouses))


def _change(
    store: CloudStore,
    tenant_id: int,
    exception_id: int,
    warehouses: Collection[str] | None,
    values: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    table = schema.order_exceptions
    with store.write() as tx:
        before = _body(_row(tx, tx.conn, tenant_id, exception_id, warehouses))
        if before["status"] == ExceptionStatus.RESOLVED.value:
            raise ExceptionClosed(
                f"exception {exception_id} is resolved already: open a new one if the problem is back"
            )
        tx.conn.execute(update(table).where(table.c.id == exception_id).values(**values, updated_at=tx.now))
        if values.get("status") == ExceptionStatus.RESOLVED.value:
            tx.conn.execute(update(table).where(table.c.id == exception_id).values(resolved_at=tx.now))
        after = _body(_row(tx, tx.conn, tenant_id, exception_id, warehouses))
        emit(tx, tenant_id, WebhookEvent.EXCEPTION_UPDATED, [after])
    return before, after


def assign_exception(
    store: CloudStore,
    tenant_id: int,
    exception_id: int,
    assignee: str,
    *,
    warehouses: Collection[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Give an exception an owner; returns (before, after)."""
    if not assignee.strip() or len(assignee) > 100:
        raise InputError("an assignee is 1 to 100 characters: name the person who takes it")
    return _change(store, tenant_id, exception_id, warehouses, {"assignee": assignee})


def acknowledge_exception(
    store: CloudStore, tenant_id: int, exception_id: int, *, warehouses: Collection[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mark an exception as seen and being handled; returns (before, after)."""
    return _change(store, tenant_id, exception_id, warehouses, {"status": ExceptionStatus.ACKNOWLEDGED.value})


def resolve_exception(
    store: CloudStore,
    tenant_id: int,
    exception_id: int,
    comment: str,
    *,
    warehouses: Collection[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Close an exception with a comment saying what was done; returns (before, after)."""
    if not comment.strip():
        raise InputError("resolving an exception needs a comment: say what was done about it")
    return _change(
        store,
        tenant_id,
        exception_id,
        warehouses,
        {"status": ExceptionStatus.RESOLVED.value, "comment": comment},
    )
