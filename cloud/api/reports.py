"""Reports over the warehouses' work: the packing report (labels, parcels, errors per packer,
station and UTC hour), scoped to the caller's warehouses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cloud.access.callers import ReadsReports, Store
from cloud.access.roles import require_warehouse
from cloud.records import packing_report

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/reports/packing", summary="Labels, parcels and errors per packer, station and hour")
def packing(
    caller: ReadsReports,
    store: Store,
    warehouse: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> Any:
    """One warehouse's report (or every warehouse the caller sees) over [from, to) in UTC hours;
    the last 24 hours without from and to, at most 31 days."""
    begin, until = packing_report.report_range(start, end)
    if warehouse is not None:
        require_warehouse(caller, warehouse)
    report = packing_report.packing_report(
        store, caller.tenant_id, caller.warehouses, begin, until, warehouse=warehouse
    )
    return {"warehouse": warehouse, **report}
