"""Alert thresholds per tenant: read them, and set one kind's (tenant-wide admin, audited).

The alerts themselves are exceptions (kind `access_alert`) in the exception center and
`alert.raised` webhook events; see cloud/access/alerts.py for what raises them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from cloud.access import alerts
from cloud.access.callers import ManagesAccess, Store
from cloud.access.roles import Forbidden
from cloud.records import audit

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class ThresholdIn(BaseModel):
    """When a kind of alert raises: `count` things (0: never) within `window_s` seconds."""

    model_config = ConfigDict(extra="forbid")

    count: Annotated[int, Field(ge=0, le=1_000_000)]
    window_s: Annotated[int, Field(ge=1, le=86_400)]


@router.get("/alerts/thresholds", summary="The tenant's alert thresholds")
def list_thresholds(caller: ManagesAccess, store: Store) -> Any:
    """Every kind with its count and window: the tenant's own, or the default."""
    found = alerts.thresholds(store, caller.tenant_id)
    return {
        "thresholds": [
            {
                "kind": kind.value,
                "count": threshold.count,
                "window_s": threshold.window_s,
                "default": threshold == alerts.DEFAULTS[kind],
            }
            for kind, threshold in found.items()
        ]
    }


@router.put("/alerts/thresholds/{alert_kind}", summary="Set one kind's alert threshold")
def set_threshold(
    alert_kind: alerts.AlertKind, body: ThresholdIn, caller: ManagesAccess, store: Store
) -> Any:
    """Thresholds hold for the whole tenant, so only an admin of the whole tenant sets them."""
    if caller.warehouses is not None:
        raise Forbidden("alert thresholds hold for the whole tenant: set them with a tenant-wide admin token")
    with store.unit_of_work():
        before, after = alerts.set_threshold(
            store, caller.tenant_id, alert_kind, alerts.Threshold(body.count, body.window_s)
        )
        audit.record(store, caller, "set_alert_threshold", "alert_threshold", alert_kind.value, before, after)
    return after
