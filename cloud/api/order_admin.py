"""Order lifecycle calls: state changes, cancel, the order timeline and the exception center."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.access.principals import Principal
from cloud.api.callers import ErasesPersonalData, ManagesOrders, ReadsOrders, Store, WorksExceptions
from cloud.orders import exceptions as exceptions_center
from cloud.orders import ingest as orders
from cloud.orders import privacy, waves
from cloud.orders import states as order_states
from cloud.records import audit
from cloud.storage.store import CloudStore
from dockside.orders import OrderState

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
OrderRef = Annotated[str, Path(min_length=1, max_length=64)]
ExceptionId = Annotated[int, Path(ge=1, le=2**62)]
_Reason = Annotated[str, StringConstraints(max_length=500)]


class StateChangeIn(BaseModel):
    """The state an order should move to, and why."""

    model_config = ConfigDict(extra="forbid")

    state: OrderState
    reason: _Reason = ""


class CancelIn(BaseModel):
    """Why an order is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: _Reason = ""


class AssignIn(BaseModel):
    """Who takes an exception."""

    model_config = ConfigDict(extra="forbid")

    assignee: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ResolveIn(BaseModel):
    """What was done about an exception."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, StringConstraints(min_length=1, max_length=5000)]


def _change_state(
    caller: Principal, store: CloudStore, order_ref: str, state: OrderState, reason: str
) -> dict[str, Any]:
    """Move the order and log the move in one transaction."""
    with store.unit_of_work():
        moved = order_states.change_state(
            store,
            caller.tenant_id,
            order_ref,
            state,
            by=caller.token_name,
            reason=reason,
            warehouses=caller.warehouses,
        )
        if moved["changed"]:
            audit.record(
                store,
                caller,
                "change_order_state",
                "order",
                moved["order_ref"],
                {"state": moved["from"]},
                {"state": moved["to"]},
            )
    return moved


@router.post("/orders/{order_ref}/state", summary="Move an order to another state")
def change_order_state(order_ref: OrderRef, body: StateChangeIn, caller: ManagesOrders, store: Store) -> Any:
    """Move an order along its lifecycle; an illegal change is refused (409) naming the current state."""
    return _change_state(caller, store, order_ref, body.state, body.reason)


@router.post("/orders/{order_ref}/cancel", summary="Cancel an order")
def cancel_order(
    order_ref: OrderRef, caller: ManagesOrders, store: Store, body: CancelIn | None = None
) -> Any:
    """Cancel an order; its warehouse's agents hear of it and refuse to pack it."""
    return _change_state(
        caller, store, order_ref, OrderState.CANCELLED, body.reason if body is not None else ""
    )


@router.post("/orders/{order_ref}/erase-personal-data", summary="Erase an order's personal data")
def erase_personal_data(order_ref: OrderRef, caller: ErasesPersonalData, store: Store) -> Any:
    """Blank the ship-to's personal fields (country kept) in the cloud and at the warehouse's agents."""
    with store.unit_of_work():
        done = privacy.erase_order_personal_data(
            store, caller.tenant_id, order_ref, by=caller.token_name, warehouses=caller.warehouses
        )
        if done["erased"]:
            # The audit trail records the erasure, never the erased values.
            audit.record(
                store,
                caller,
                "erase_personal_data",
                "order",
                order_ref,
                {"personal_data": "present"},
                {"personal_data": "erased"},
            )
    return done


class WaveIn(BaseModel):
    """Orders to release to one station, in the order their labels should print."""

    model_config = ConfigDict(extra="forbid")

    warehouse: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    station: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    order_refs: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
        Field(min_length=1, max_length=waves.MAX_WAVE_ORDERS),
    ]


@router.post("/waves", status_code=201, summary="Release a wave of orders to a station")
def release_wave(body: WaveIn, caller: ManagesOrders, store: Store) -> Any:
    """Release the orders to the station in print order; orders that cannot join are listed in `errors`."""
    with store.unit_of_work():
        wave = waves.release_wave(
            store,
            caller.tenant_id,
            warehouse=body.warehouse,
            station=body.station,
            order_refs=body.order_refs,
            by=caller.token_name,
            warehouses=caller.warehouses,
        )
        after = {**wave, "errors": len(wave["errors"])}
        audit.record(store, caller, "release_wave", "wave", str(wave["id"]), None, after)
    return wave


@router.get("/waves/{wave_id}", summary="One wave with its orders' states")
def get_wave(wave_id: Annotated[int, Path(ge=1, le=2**62)], caller: ReadsOrders, store: Store) -> Any:
    """A wave's station and its orders in print order, with their current states."""
    return waves.get_wave(store, caller.tenant_id, wave_id, warehouses=caller.warehouses)


@router.get("/orders/{order_ref}/timeline", summary="Everything that happened to an order")
def order_timeline(order_ref: OrderRef, caller: ReadsOrders, store: Store) -> Any:
    """Cloud and edge events of one order in time order, with sources (agent, station, printer, user)."""
    return orders.order_timeline(store, caller.tenant_id, order_ref, warehouses=caller.warehouses)


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
