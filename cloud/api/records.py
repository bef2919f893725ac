"""The audit log's query and the exports of orders, exceptions and the audit log (CSV, JSON lines)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from cloud.access import alerts
from cloud.access.callers import Caller, ReadsAudit, Store
from cloud.access.principals import Principal
from cloud.access.roles import Permission, require
from cloud.records import audit, export
from cloud.storage.store import CloudStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class ExportKind(StrEnum):
    """What an export holds."""

    ORDERS = "orders"
    EXCEPTIONS = "exceptions"
    AUDIT = "audit"


class ExportFormat(StrEnum):
    """How an export is written."""

    CSV = "csv"
    JSONL = "jsonl"


@router.get("/audit", summary="Query the audit log")
def query_audit(
    caller: ReadsAudit,
    store: Store,
    object_kind: Annotated[str | None, Query(max_length=32)] = None,
    object_key: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LISTED)] = 100,
) -> Any:
    """Admin writes, newest first: by object (kind and key), by actor id and by time.

    `actor` is the unique id (`token:<id>`, `user:<id>`, `cli:<os user>`); each entry carries the
    actor's display name as `actor_name`.

    A token limited to some warehouses sees only entries of objects in those warehouses.
    """
    return {
        "entries": audit.query_audit(
            store,
            caller.tenant_id,
            warehouses=caller.warehouses,
            object_kind=object_kind,
            object_key=object_key,
            actor=actor,
            since=since,
            until=until,
            limit=limit,
        )
    }


@router.get(
    "/export/{kind}",
    summary="Export orders, exceptions or the audit log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
def export_records(
    kind: ExportKind,
    caller: Caller,
    store: Store,
    format: ExportFormat = ExportFormat.JSONL,
) -> StreamingResponse:
    """Every record of the kind in the caller's scope, oldest first, as CSV or JSON lines."""
    columns: tuple[str, ...]
    if kind is ExportKind.AUDIT:
        require(caller, Permission.READ_AUDIT)
        records = export.iter_audit(store, caller.tenant_id, warehouses=caller.warehouses)
        columns = export.AUDIT_COLUMNS
    elif kind is ExportKind.EXCEPTIONS:
        require(caller, Permission.READ_ORDERS)
        records = export.iter_exceptions(store, caller.tenant_id, warehouses=caller.warehouses)
        columns = export.EXCEPTION_COLUMNS
    else:
        require(caller, Permission.READ_ORDERS)
        records = export.iter_orders(store, caller.tenant_id, warehouses=caller.warehouses)
        columns = export.ORDER_COLUMNS
    threshold = alerts.thresholds(store, caller.tenant_id)[alerts.AlertKind.BULK_EXPORT]
    if threshold.count:
        records = _watched(records, store, caller, kind.value, threshold.count)
    if format is ExportFormat.CSV:
        body = export.as_csv(records, columns, orders=kind is ExportKind.ORDERS)
        media = "text/csv; charset=utf-8"
    else:
        body = export.as_json_lines(records)
        media = "application/x-ndjson"
    filename = f"dockside-{kind.value}.{format.value}"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _watched(
    records: Iterable[dict[str, Any]], store: CloudStore, caller: Principal, what: str, count: int
) -> Iterator[dict[str, Any]]:
    """The records as they are, raising a bulk-export alert as the `count`-th one goes out."""
    for handed, record in enumerate(records, start=1):
        if handed == count:
            alerts.bulk_export(
                store,
                tenant_id=caller.tenant_id,
                actor=caller.actor,
                name=caller.token_name,
                what=what,
                records=handed,
            )
        yield record
