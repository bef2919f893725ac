"""The fleet's setup calls: warehouses, their packing stations, and agent enrollment tokens.

Each write is synced to the warehouse's agents and logged in the audit log in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from cloud.access.callers import EnrollsAgents, ReadsSetup, Store, WritesStations, WritesWarehouses
from cloud.access.roles import Forbidden, require_warehouse
from cloud.fleet import warehouses
from cloud.records import audit

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
WarehouseCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


def _created(body: Any, created: bool, response: Response) -> Any:
    response.status_code = 201 if created else 200
    return body


@router.post("/warehouses", status_code=201, summary="Create or replace a warehouse")
def put_warehouse(
    body: warehouses.WarehouseIn, caller: WritesWarehouses, store: Store, response: Response
) -> Any:
    """Create a warehouse (201) or replace one with the same code (200); synced to its agents."""
    if not caller.sees(body.code):
        raise Forbidden(
            f"this token is limited to warehouses {', '.join(sorted(caller.warehouses or ()))}: "
            f"use a token for warehouse {body.code!r} or the whole tenant"
        )
    with store.unit_of_work():
        before = audit.before_of(lambda: warehouses.get_warehouse(store, caller.tenant_id, body.code))
        saved, created = warehouses.put_warehouse(store, caller.tenant_id, body)
        audit.record(store, caller, "put_warehouse", "warehouse", body.code, before, saved)
    return _created(saved, created, response)


@router.get("/warehouses", summary="List warehouses")
def list_warehouses(caller: ReadsSetup, store: Store) -> Any:
    """Every warehouse of the caller's tenant that the caller's scope covers."""
    found = warehouses.list_warehouses(store, caller.tenant_id)
    return {"warehouses": [warehouse for warehouse in found if caller.sees(warehouse["code"])]}


@router.get("/warehouses/{wh}", summary="One warehouse with its stations")
def get_warehouse(wh: WarehouseCode, caller: ReadsSetup, store: Store) -> Any:
    """A warehouse and its stations."""
    return warehouses.get_warehouse(store, caller.tenant_id, require_warehouse(caller, wh))


@router.post("/warehouses/{wh}/stations", status_code=201, summary="Create or replace a station")
def put_station(
    wh: WarehouseCode, body: warehouses.StationIn, caller: WritesStations, store: Store, response: Response
) -> Any:
    """Create a packing station (201) or replace one with the same code (200); synced to agents."""
    existing = warehouses.list_stations(store, caller.tenant_id, require_warehouse(caller, wh))
    before = next((station for station in existing if station.get("code") == body.code), None)
    with store.unit_of_work():
        saved, created = warehouses.put_station(store, caller.tenant_id, wh, body)
        audit.record(store, caller, "put_station", "station", f"{wh}/{body.code}", before, saved)
    return _created(saved, created, response)


@router.get("/warehouses/{wh}/stations", summary="List a warehouse's stations")
def list_stations(wh: WarehouseCode, caller: ReadsSetup, store: Store) -> Any:
    """The stations of one warehouse."""
    return {"stations": warehouses.list_stations(store, caller.tenant_id, require_warehouse(caller, wh))}


@router.post(
    "/warehouses/{wh}/enrollment-tokens", status_code=201, summary="Create a one-time enrollment token"
)
def create_enrollment_token(
    wh: WarehouseCode, caller: EnrollsAgents, store: Store, body: warehouses.EnrollmentTokenIn | None = None
) -> Any:
    """A token an agent trades once, before it expires, for its identity in this warehouse."""
    ttl_s = body.ttl_s if body is not None else warehouses.EnrollmentTokenIn().ttl_s
    code = require_warehouse(caller, wh)
    with store.unit_of_work():
        made = warehouses.create_enrollment_token(store, caller.tenant_id, code, ttl_s)
        # The token itself is a secret: the log keeps only that one was made, and until when.
        after = {key: value for key, value in made.items() if key != "token"}
        audit.record(store, caller, "create_enrollment_token", "warehouse", wh, None, after)
    return made
