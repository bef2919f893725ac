"""The agent API for a station's devices: zero and tare its scale, see its printers' queues.

    POST /api/v1/stations/{code}/scale/zero   zero the empty scale
    POST /api/v1/stations/{code}/scale/tare   tare what is on it (a box, a tray)
    GET  /api/v1/stations/{code}/devices      the station's printers (state, held jobs) and scale

The command goes to the scale's reader thread, which owns the serial port; the answer comes
once the scale confirmed it (or with the scale's own error: in motion, out of range).
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter
from fastapi.responses import Response

from dockside.errors import NotFound, ScaleError
from edge_agent.devices.stations import Station, StationFloor

__all__ = ["station_devices_router"]


def _json(body: object) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")


def station_devices_router(floor: StationFloor) -> APIRouter:
    """Routes for the devices of `floor`'s stations."""
    router = APIRouter()

    def station(code: str) -> Station:
        found = floor.get(code) if len(code) <= 32 else None
        if found is None:
            raise NotFound(
                f"station {code[:32]} is not configured for this warehouse: check the station code",
                code="station_not_found",
            )
        return found

    async def command(code: str, what: str) -> Response:
        at = station(code)
        scale = at.scale
        if scale is None:
            raise ScaleError(
                f"station {at.code} has no scale: set its scale in the cloud console",
                code="scale_not_configured",
            )
        await asyncio.to_thread(scale.zero if what == "zero" else scale.tare)
        described = at.describe().scale
        return _json({"station": at.code, "done": what, "scale": described.to_json() if described else None})

    @router.post("/api/v1/stations/{code}/scale/zero", summary="Zero the station's empty scale")
    async def zero(code: str) -> Response:
        return await command(code, "zero")

    @router.post("/api/v1/stations/{code}/scale/tare", summary="Tare what lies on the station's scale")
    async def tare(code: str) -> Response:
        return await command(code, "tare")

    @router.get("/api/v1/stations/{code}/devices", summary="The station's printers and scale")
    async def devices(code: str) -> Response:
        return _json(station(code).describe().to_json())

    return router
