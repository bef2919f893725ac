"""The packers of a warehouse: add, list, rename, re-badge, re-PIN, disable.

Each write is synced to the warehouse's agents and logged in the audit log in the same transaction
(a PIN never: the entry says only whether the packer has one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cloud.access.callers import ReadsSetup, Store, WritesPackers
from cloud.access.roles import require_warehouse
from cloud.fleet import packers
from cloud.records import audit

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
WarehouseCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
PackerId = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/warehouses/{wh}/packers", status_code=201, summary="Add a packer to a warehouse")
def create_packer(wh: WarehouseCode, body: packers.PackerIn, caller: WritesPackers, store: Store) -> Any:
    """A packer who signs in at the warehouse's stations with a badge or a PIN; synced to its agents."""
    code = require_warehouse(caller, wh)
    with store.unit_of_work():
        saved = packers.create_packer(store, caller.tenant_id, code, body)
        audit.record(store, caller, "create_packer", "packer", f"{code}/{saved['id']}", None, saved)
    return saved


@router.get("/warehouses/{wh}/packers", summary="List a warehouse's packers")
def list_packers(wh: WarehouseCode, caller: ReadsSetup, store: Store) -> Any:
    """The packers of one warehouse, disabled ones included (never a PIN)."""
    return {"packers": packers.list_packers(store, caller.tenant_id, require_warehouse(caller, wh))}


@router.patch("/warehouses/{wh}/packers/{packer_id}", summary="Change or disable a packer")
def update_packer(
    wh: WarehouseCode, packer_id: PackerId, body: packers.PackerPatch, caller: WritesPackers, store: Store
) -> Any:
    """Rename, give a new badge or PIN, disable (the agents forget the packer) or enable again."""
    code = require_warehouse(caller, wh)
    with store.unit_of_work():
        before, after = packers.update_packer(store, caller.tenant_id, code, packer_id, body)
        if after != before:
            audit.record(store, caller, "update_packer", "packer", f"{code}/{packer_id}", before, after)
    return after
