"""How a station screen gets its session: on this PC by opening the page, elsewhere by pairing.

    GET  /api/v1/session   is this screen signed in? On this PC (loopback) a missing or stale
                           session is replaced at once (Set-Cookie); elsewhere the answer says
                           to pair
    POST /api/v1/pair      {"code": "K7QH-M2XD"}: a one-time code from `dockside-agent pair-code`
                           for a paired session cookie (403 wrong/expired/locked, 429 throttled)

Both answer without a credential (they are how one is obtained); `edge_agent.http.local_access`
still checks their Host and Origin, and the pairing body's Content-Type.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from dockside.errors import InputError
from edge_agent.http.local_access import (
    PAIR_PATH,
    SESSION_PATH,
    has_session,
    loopback_session,
    set_cookie_header,
)
from edge_agent.http.local_credentials import LocalCredentials

__all__ = ["PairRequest", "station_pairing_router"]


class PairRequest(BaseModel):
    """`POST /api/v1/pair`: the code IT read from `dockside-agent pair-code`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, StringConstraints(min_length=1, max_length=32)]


def _json(body: object, *, cookie: str | None = None) -> Response:
    response = Response(json.dumps(body).encode(), media_type="application/json")
    response.headers["cache-control"] = "no-store"
    if cookie is not None:
        response.headers["set-cookie"] = cookie
    return response


def station_pairing_router(credentials: LocalCredentials) -> APIRouter:
    """The session probe and the pairing call, checked against `credentials`."""
    router = APIRouter()

    @router.get(SESSION_PATH, summary="Whether this screen has a station session (this PC gets one at once)")
    async def session(request: Request) -> Response:
        port = int((request.scope.get("server") or ("", 0))[1] or 0)
        if has_session(request.headers.get("cookie"), port, credentials):
            return _json({"signed_in": True})
        fresh = loopback_session(request.scope, request.headers.get("cookie"), credentials)
        if fresh is not None:
            return _json({"signed_in": True}, cookie=fresh)
        return _json(
            {
                "signed_in": False,
                "pairing": "this screen is not paired with the agent: ask IT to run "
                "`dockside-agent pair-code` on the agent's PC and enter the code it prints",
            }
        )

    @router.post(PAIR_PATH, summary="Pair this screen with a one-time code from `dockside-agent pair-code`")
    async def pair(request: Request) -> Response:
        try:
            body = PairRequest.model_validate_json(await request.body())
        except ValidationError:
            raise InputError(
                'send {"code": "..."} with the code `dockside-agent pair-code` printed', code="invalid_input"
            ) from None
        client = request.client.host if request.client else ""
        value = credentials.pair(body.code, client)
        port = int((request.scope.get("server") or ("", 0))[1] or 0)
        return _json({"paired": True}, cookie=set_cookie_header(port, value, paired=True))

    return router
