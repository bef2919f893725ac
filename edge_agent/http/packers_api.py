"""The agent API for who packs at a station: sign in with a badge or a PIN, sign out, ask who.

    POST   /api/v1/stations/{code}/packer   {"badge": "..."} or {"pin": "1234"}: sign in (401 when
                                            no packer has it; 429 after 5 failures in a minute here)
    DELETE /api/v1/stations/{code}/packer   sign out whoever is signed in
    GET    /api/v1/stations/{code}/packer   who is signed in: {"station", "packer": {"id", "name"} or null}

The signed-in packer lives in the agent (edge_agent.packing.packers), not in the page: a reload
keeps them, and so does a restart of the agent.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from dockside.errors import InputError, NotFound
from dockside.http_errors import invalid_body
from edge_agent.devices.stations import StationFloor
from edge_agent.packing.packers import SignedIn, StationSignIns

__all__ = ["packers_router"]

_EXPECTED = 'a JSON object with the badge scanned ({"badge": "..."}) or the PIN typed ({"pin": "1234"})'


class _SignInRequest(BaseModel):
    """A sign-in: the badge scanned, or the PIN typed (one of the two)."""

    model_config = ConfigDict(extra="forbid")

    badge: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")] | None
    ) = None
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")] | None = None


def _json(body: object) -> Response:
    return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")


def _answer(station: str, signed: SignedIn | None) -> Response:
    if signed is None:
        return _json({"station": station, "packer": None, "signed_in_at_ms": None})
    return _json(signed.to_json())


def packers_router(floor: StationFloor, sign_ins: StationSignIns) -> APIRouter:
    """Routes for the packers signed in at `floor`'s stations."""
    router = APIRouter()

    def station(code: str) -> str:
        found = floor.get(code) if len(code) <= 32 else None
        if found is None:
            raise NotFound(
                f"station {code[:32]} is not configured for this warehouse: check the station code",
                code="station_not_found",
            )
        return found.code

    @router.post("/api/v1/stations/{code}/packer", summary="Sign a packer in at the station (badge or PIN)")
    async def sign_in(code: str, request: Request) -> Response:
        at = station(code)
        try:
            body = _SignInRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise invalid_body(
                exc.errors(include_url=False, include_input=False), expected=_EXPECTED
            ) from None
        if (body.badge is None) == (body.pin is None):
            raise InputError(f"send {_EXPECTED}, not both", code="invalid_body")
        return _answer(at, await sign_ins.sign_in(at, badge=body.badge, pin=body.pin))

    @router.delete("/api/v1/stations/{code}/packer", summary="Sign the station's packer out")
    async def sign_out(code: str) -> Response:
        at = station(code)
        sign_ins.sign_out(at)
        return _answer(at, None)

    @router.get("/api/v1/stations/{code}/packer", summary="The packer signed in at the station")
    async def who(code: str) -> Response:
        at = station(code)
        return _answer(at, sign_ins.who(at))

    return router
