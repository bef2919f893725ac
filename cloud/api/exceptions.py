"""The exception center's calls: list and read exceptions, give one an owner, acknowledge, resolve."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, StringConstraints

from cloud.access.callers import ReadsOrders, Store, WorksExceptions
from cloud.orders import exceptions as exceptions_center
from cloud.records import audit

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
ExceptionId = Annotated[int, Path(ge=1, le=2**62)]


class AssignIn(BaseModel):
    """Who takes an exception."""

    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ResolveIn(BaseModel):
    """What was done about an exception."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, StringConstraints(min_length=1, max_length=5000)]


@router.get("/exceptions", summary="List exceptions")
def list_exceptions(
    caller: ReadsOrders,
    store: Store,
    status: exceptions_center.ExceptionStatus | None = None,
    kind: exceptions_center.ExceptionKind | None = None,
    warehouse: Annotated[str | None, Query(max_length=32)] = None,
    order_ref: Annotated[str | None, Query(max_length=64)] = None,
    assignee: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=exceptions_center.MAX_LISTED)] = 100,
) -> Any:
    """Exceptions in the caller's scope, newest first, filtered by status, kind, warehouse, order or owner."""
    return {
        "exceptions": exceptions_center.list_exceptions(
            store,
            caller.tenant_id,
            warehouses=caller.warehouses,
            status=status.value if status else None,
            kind=kind.value if kind else None,
            warehouse=warehouse,
            order_ref=order_ref,
            assignee=assignee,
            limit=limit,
        )
    }


@router.get("/exceptions/{exception_id}", summary="One exception")
def get_exception(exception_id: ExceptionId, caller: ReadsOrders, store: Store) -> Any:
    """One exception with its status, owner and detail."""
    return exceptions_center.get_exception(
        store, caller.tenant_id, exception_id, warehouses=caller.warehouses
    )


@router.post("/exceptions/{exception_id}/assign", summary="Give an exception an owner")
def assign_exception(exception_id: ExceptionId, body: AssignIn, caller: WorksExceptions, store: Store) -> Any:
    """Set who handles the exception."""
    with store.unit_of_work():
        before, after = exceptions_center.assign_exception(
            store, caller.tenant_id, exception_id, body.assignee, warehouses=caller.warehouses
        )
        audit.record(store, caller, "assign_exception", "exception", str(exception_id), before, after)
    return after


@router.post("/exceptions/{exception_id}/acknowledge", summary="Acknowledge an exception")
def acknowledge_exception(exception_id: ExceptionId, caller: WorksExceptions, store: Store) -> Any:
    """Mark the exception as seen and being handled."""
    with store.unit_of_work():
        before, after = exceptions_center.acknowledge_exception(
            store, caller.tenant_id, exception_id, warehouses=caller.warehouses
        )
        audit.record(store, caller, "acknowledge_exception", "exception", str(exception_id), before, after)
    return after


@router.post("/exceptions/{exception_id}/resolve", summary="Resolve an exception with a comment")
def resolve_exception(
    exception_id: ExceptionId, body: ResolveIn, caller: WorksExceptions, store: Store
) -> Any:
    """Close the exception, saying what was done; a resolved exception cannot change again."""
    with store.unit_of_work():
        before, after = exceptions_center.resolve_exception(
            store, caller.tenant_id, exception_id, body.comment, warehouses=caller.warehouses
        )
        audit.record(store, caller, "resolve_exception", "exception", str(exception_id), before, after)
    return after
