"""Shipping calls: carrier accounts and their number ranges; manifests, their PDF and CSV, and handover.

Carriers belong to the whole tenant (every warehouse prints with them, and an `api` carrier holds
a secret), so only callers that see the whole tenant write them; everyone who reads the setup may
read them, never their secrets. Manifests belong to a warehouse: a caller limited to warehouses
sees and closes only theirs. Every write is audited in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict

from cloud.access.callers import EditsRulesets, ManagesOrders, ReadsOrders, ReadsSetup, Store
from cloud.access.principals import Principal
from cloud.access.roles import Forbidden, require_warehouse
from cloud.records import audit
from cloud.shipping import carriers, manifests, ranges
from cloud.shipping.carriers import CarrierCode
from cloud.shipping.manifest_pdf import manifest_pdf

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
CarrierPath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
WarehouseCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
ManifestId = Annotated[int, Path(ge=1, le=2**62)]


def tenant_wide_carrier_editor(caller: EditsRulesets) -> Principal:
    """The caller, if it sees the whole tenant (carriers serve every warehouse)."""
    if caller.warehouses is not None:
        raise Forbidden(
            "carrier accounts serve every warehouse of the tenant, and this token is limited to warehouses "
            f"{', '.join(sorted(caller.warehouses))}: manage carriers with a token for the whole tenant"
        )
    return caller


CarrierEditor = Annotated[Principal, Depends(tenant_wide_carrier_editor)]


class ManifestIn(BaseModel):
    """The carrier whose labelled parcels to close."""

    model_config = ConfigDict(extra="forbid")

    carrier: CarrierCode


@router.post("/carriers", status_code=201, summary="Create or replace a carrier account")
def put_carrier(body: carriers.CarrierIn, caller: CarrierEditor, store: Store, response: Response) -> Any:
    """Create a carrier (201) or replace one with the same code (200); synced to every warehouse.

    An `api` carrier's secret is sealed at rest and never shown again.
    """
    with store.unit_of_work():
        before = audit.before_of(lambda: carriers.get_carrier(store, caller.tenant_id, body.code))
        saved, created = carriers.put_carrier(store, caller.tenant_id, body)
        audit.record(store, caller, "put_carrier", "carrier", body.code, before, saved)
    response.status_code = 201 if created else 200
    return saved


@router.get("/carriers", summary="List carrier accounts")
def list_carriers(caller: ReadsSetup, store: Store) -> Any:
    """The tenant's carriers with how each gets its tracking numbers (never their secrets)."""
    return {"carriers": carriers.list_carriers(store, caller.tenant_id)}


@router.get("/carriers/{code}", summary="One carrier account")
def get_carrier(code: CarrierPath, caller: ReadsSetup, store: Store) -> Any:
    """A carrier, its number format and its free numbers (never its secret)."""
    return carriers.get_carrier(store, caller.tenant_id, code)


@router.post("/carriers/{code}/ranges", status_code=201, summary="Add a carrier-issued number range")
def add_range(code: CarrierPath, body: ranges.RangeIn, caller: CarrierEditor, store: Store) -> Any:
    """Add serials `first..last` (or the first and last tracking numbers) and lease them to the agents.

    A wrong check character, a backwards or too wide range, or one overlapping a range of the
    carrier is refused and changes nothing.
    """
    with store.unit_of_work():
        added = ranges.add_range(store, caller.tenant_id, code, body)
        audit.record(store, caller, "add_number_range", "carrier", code, None, added)
    return added


@router.get("/carriers/{code}/ranges", summary="A carrier's number ranges")
def list_ranges(code: CarrierPath, caller: ReadsSetup, store: Store) -> Any:
    """The carrier's ranges in serial order, with how much of each is not yet leased."""
    return {"ranges": ranges.list_ranges(store, caller.tenant_id, code)}


@router.post("/warehouses/{warehouse}/manifests", status_code=201, summary="Close a carrier's parcels")
def close_manifest(warehouse: WarehouseCode, body: ManifestIn, caller: ManagesOrders, store: Store) -> Any:
    """Close every labelled parcel of the carrier at the warehouse that is on no manifest yet.

    409 `manifest_empty` when there is none.
    """
    require_warehouse(caller, warehouse)
    with store.unit_of_work():
        made = manifests.close_manifest(
            store,
            caller.tenant_id,
            warehouse,
            body.carrier,
            by=caller.token_name,
            warehouses=caller.warehouses,
        )
        after = {key: value for key, value in made.items() if key != "parcels"}
        audit.record(store, caller, "close_manifest", "manifest", str(made["id"]), None, after)
    return made


@router.get(
    "/manifests/{manifest_id}.pdf", summary="A manifest as PDF for the driver", response_class=Response
)
def get_manifest_pdf(manifest_id: ManifestId, caller: ReadsOrders, store: Store) -> Response:
    """The printable manifest: parcels, totals, a barcode of its id and the driver's signature line."""
    manifest = manifests.get_manifest(store, caller.tenant_id, manifest_id, warehouses=caller.warehouses)
    headers = {"Content-Disposition": f'inline; filename="manifest-{manifest_id}.pdf"'}
    return Response(manifest_pdf(manifest), media_type="application/pdf", headers=headers)


@router.get("/manifests/{manifest_id}.csv", summary="A manifest as CSV", response_class=Response)
def get_manifest_csv(manifest_id: ManifestId, caller: ReadsOrders, store: Store) -> Response:
    """One row per parcel: manifest, order, parcel number, tracking number, carrier, service, weight."""
    manifest = manifests.get_manifest(store, caller.tenant_id, manifest_id, warehouses=caller.warehouses)
    headers = {"Content-Disposition": f'attachment; filename="manifest-{manifest_id}.csv"'}
    return Response(manifests.manifest_csv(manifest), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/manifests/{manifest_id}", summary="One manifest with its parcels")
def get_manifest(manifest_id: ManifestId, caller: ReadsOrders, store: Store) -> Any:
    """The manifest's warehouse, carrier, totals, handover time and parcels."""
    return manifests.get_manifest(store, caller.tenant_id, manifest_id, warehouses=caller.warehouses)


@router.post("/manifests/{manifest_id}/handover", summary="Hand a manifest's parcels to the driver")
def handover_manifest(manifest_id: ManifestId, caller: ManagesOrders, store: Store) -> Any:
    """Its parcels become shipped, and every order whose parcels all are; a second call changes nothing."""
    with store.unit_of_work():
        done = manifests.handover_manifest(
            store, caller.tenant_id, manifest_id, by=caller.token_name, warehouses=caller.warehouses
        )
        if done["changed"]:
            after = {key: value for key, value in done.items() if key != "parcels"}
            audit.record(store, caller, "handover_manifest", "manifest", str(manifest_id), None, after)
    return done
