"""Wave calls: release a wave of orders to one station in print order, and read a wave back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.access.callers import ManagesOrders, ReadsOrders, Store
from cloud.orders import waves
from cloud.records import audit

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


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
