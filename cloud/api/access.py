"""Who is calling (/me), and console sign-in: a password and a TOTP code for a session token."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from cloud.access import users
from cloud.access.callers import Caller, Store, client_address
from cloud.access.principals import Unauthenticated
from cloud.access.sign_in_limits import SignInLimited
from dockside.http_errors import error_response

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


_EMAIL = re.compile(r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
_TOTP = re.compile(r"^[0-9]{6}$")


class SignIn(BaseModel):
    """A person's email, password and the current code from their authenticator app.

    Checked before anything else runs: a password over 1,000 characters is refused (422) before
    argon2 spends its time on it, as is an email with spaces or control characters, or a code
    that is not 6 digits.
    """

    model_config = ConfigDict(extra="forbid")

    # The patterns document the shape in the spec; the validators below enforce it with a clear message.
    email: Annotated[
        str,
        StringConstraints(min_length=3, max_length=254),
        Field(json_schema_extra={"pattern": _EMAIL.pattern}),
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    totp: Annotated[
        str,
        StringConstraints(min_length=6, max_length=6),
        Field(json_schema_extra={"pattern": _TOTP.pattern}),
    ]

    @field_validator("email")
    @classmethod
    def _an_email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("an email is name@example.com, without spaces or control characters")
        return value

    @field_validator("totp")
    @classmethod
    def _six_digits(cls, value: str) -> str:
        if not _TOTP.fullmatch(value):
            raise ValueError("a code is the 6 digits your authenticator app shows now")
        return value


@router.post(
    "/session",
    status_code=201,
    summary="Sign in to the console",
    responses={429: {"description": "Too many failed sign-ins for this account or address (Retry-After)"}},
)
async def sign_in(body: SignIn, store: Store, request: Request) -> Any:
    """A session token (`Authorization: Bearer <token>`) with the user's role, tenant and warehouses.

    20 failed sign-ins from one address within 15 minutes lock that address out for 15 minutes
    (429 with `Retry-After`). After 5 failures of one account, its next attempts from addresses it
    never signed in from wait a delay that doubles from 1 s to at most 60 s (429 with
    `Retry-After`); from an address it signed in from before, a correct password and code always
    get in. A successful sign-in clears the account's count.
    """
    address = client_address(request)
    try:
        # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
        return await run_in_threadpool(
            users.sign_in, store, email=body.email, password=body.password, code=body.totp, address=address
        )
    except SignInLimited as exc:
        return error_response(exc.http_status, exc.code, exc.message, {"Retry-After": str(exc.retry_after_s)})


@router.delete("/session", status_code=204, summary="Sign out")
def sign_out(caller: Caller, store: Store, request: Request) -> None:
    """End the session whose token this call carries (an API token is not a session: 401)."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    if not token.startswith(users.SESSION_PREFIX):
        raise Unauthenticated(
            "this is an API token, not a session: revoke it with POST /api/v1/tokens/{id}/revoke "
            "or `dockside-cloud revoke-token ID`"
        )
    users.end_session(store, token)


@router.get("/me", summary="Who the caller is")
def me(caller: Caller) -> Any:
    """The caller's role, tenant, warehouse scope (null: every warehouse) and token name."""
    return {
        "role": caller.role.value,
        "tenant": caller.tenant,
        "warehouses": sorted(caller.warehouses) if caller.warehouses is not None else None,
        "name": caller.token_name,
    }
