"""The agent API for the item check at a packing station (edge_agent.packing.item_check).

    GET    /api/v1/stations/{code}/item-check               the check the station last worked on and
                                                            did not finish: {"station", "required",
                                                            "check": {...} or null} (a reloaded page
                                                            resumes it)
    GET    /api/v1/stations/{code}/item-check/{order_ref}   the order's lines with what is scanned:
                                                            {"order_ref", "required", "complete",
                                                            "lines": [{"line", "sku", "barcode",
                                                            "description", "quantity", "scanned"}],
                                                            "units", "units_scanned", ...}
    POST   /api/v1/stations/{code}/item-check/{order_ref}/scan  {"scan": "..."}: one unit counted;
                                                            409 `wrong_item` / `extra_unit` (logged),
                                                            422 `item_scan_unreadable`
    POST   /api/v1/stations/{code}/item-check/{order_ref}/reset  start the order's count again
    DELETE /api/v1/stations/{code}/item-check               set the station's check aside (Esc): its
                                                            count stays, a reload no longer resumes it

The order reference is taken as scanned, as the pack takes it (the agent's [scanner] reading). The
pack itself refuses an order whose items are not all scanned (409 `items_not_checked`) while the
warehouse's `item_check` setting is on.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from dockside.errors import NotFound
from dockside.http_errors import invalid_body
from dockside.scanning import ScanReader
from edge_agent.devices.stations import StationFloor
from edge_agent.packing.item_check import MAX_ITEM_SCAN_CHARS, ItemChecks

__all__ = ["ItemScanRequest", "item_check_router"]

_EXPECTED = 'a JSON object with the item\'s barcode as scanned, like {"scan": "4006381333931"}'


class ItemScanRequest(BaseModel):
    """One item scanned at the station: its barcode (GTIN, GS1 code or SKU) as the scanner typed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The length is the check's own (ItemScanUnreadable, with the fix); this bound only keeps a
    # pasted page out of the validator.
    scan: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ITEM_SCAN_CHARS * 8)]


def _json(body: Any) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), media_type="application/json"
    )


def item_check_router(floor: StationFloor, checks: ItemChecks, scans: ScanReader) -> APIRouter:
    """Routes for the item checks at `floor`'s stations; order references read by `scans`."""
    router = APIRouter()
    checks.use_scanner(scans)

    def station(code: str) -> str:
        found = floor.get(code) if len(code) <= 32 else None
        if found is None:
            raise NotFound(
                f"station {code[:32]} is not configured for this warehouse: check the station code",
                code="station_not_found",
            )
        return found.code

    @router.get("/api/v1/stations/{code}/item-check", summary="The item check the station is at, if any")
    async def current(code: str) -> Response:
        at = station(code)
        check = checks.current(at)
        return _json({"station": at, "required": checks.required(), "check": check and check.to_json()})

    @router.delete("/api/v1/stations/{code}/item-check", summary="Set the station's item check aside")
    async def set_aside(code: str) -> Response:
        at = station(code)
        checks.set_aside(at)
        return _json({"station": at, "required": checks.required(), "check": None})

    @router.get(
        "/api/v1/stations/{code}/item-check/{order_ref}", summary="An order's lines and what is scanned"
    )
    async def of_order(code: str, order_ref: str) -> Response:
        at = station(code)
        return _json(checks.of_order(scans.order_ref(order_ref), at).to_json())

    @router.post(
        "/api/v1/stations/{code}/item-check/{order_ref}/scan",
        summary="Count one scanned item against the order's lines (409 for a wrong item or an extra unit)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ItemScanRequest.model_json_schema()}},
            }
        },
    )
    async def scan(code: str, order_ref: str, request: Request) -> Response:
        at = station(code)
        try:
            body = ItemScanRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise invalid_body(
                exc.errors(include_url=False, include_input=False), expected=_EXPECTED
            ) from None
        return _json(checks.scan(scans.order_ref(order_ref), at, body.scan).to_json())

    @router.post(
        "/api/v1/stations/{code}/item-check/{order_ref}/reset", summary="Count the order's items again"
    )
    async def reset(code: str, order_ref: str) -> Response:
        at = station(code)
        return _json(checks.reset(scans.order_ref(order_ref), at).to_json())

    return router
