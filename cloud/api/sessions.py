"""Console sign-in: a password and a TOTP code for a session token; sign-out ends it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, StringConstraints

from cloud import users
from cloud.access import Unauthenticated
from cloud.api.callers import Caller, Store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


class SignIn(BaseModel):
    """A person's email, password and the current code from their authenticator app."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    totp: Annotated[str, StringConstraints(min_length=6, max_length=10)]


@router.post("/session", status_code=201, summary="Sign in to the console")
async def sign_in(body: SignIn, store: Store) -> Any:
    """A session token (`Authorization: Bearer <token>`) with the user's role, tenant and warehouses."""
    # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
    return await run_in_threadpool(
        users.sign_in, store, email=body.email, password=body.password, code=body.totp
    )


@router.delete("/session", status_code=204, summary="Sign out")
def sign_out(caller: Caller, store: Store, request: Request) -> None:
    """End the session whose token this call carries (an API token is not a session: 401)."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not token.startswith(users.SESSION_PREFIX):
        raise Unauthenticated("this is an API token, not a session: revoke API tokens with the CLI")
    users.end_session(store, token)
