"""API tokens: list, create (secret shown once) and revoke, admin only, audited.

An admin limited to some warehouses sees and revokes only tokens limited to warehouses of its
own, and cannot make a token broader than itself: every token it makes is limited to some of its
warehouses (403 otherwise). A token is always made for the caller's own tenant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cloud.access import principals as access
from cloud.access.callers import ManagesAccess, Store
from cloud.access.principals import Principal, Role
from cloud.access.roles import Forbidden
from cloud.records import audit
from cloud.storage.store import utcnow

__all__ = ["TokenIn", "router", "scope_within"]

router = APIRouter(prefix="/api/v1")
TokenId = Annotated[int, Path(ge=1, le=2**62)]
_NAME = r"^[^\x00-\x1f\x7f]+$"
_WAREHOUSE = r"^[A-Za-z0-9_.-]{1,32}$"
_MAX_SECONDS = int(access.MAX_TOKEN_LIFETIME.total_seconds())


class TokenIn(BaseModel):
    """A token to make: who it is for, its role and scope, and when it ends (never, by default)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=_NAME)]
    role: Role
    warehouses: Annotated[
        list[Annotated[str, Field(pattern=_WAREHOUSE)]] | None, Field(min_length=1, max_length=100)
    ] = None
    expires_in: Annotated[int | None, Field(ge=60, le=_MAX_SECONDS, description="seconds from now")] = None
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenIn:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self

    def expiry(self) -> datetime | None:
        """When the token ends, or None for never."""
        if self.expires_in is not None:
            return utcnow() + timedelta(seconds=self.expires_in)
        return self.expires_at


def scope_within(caller: Principal, warehouses: list[str] | None, what: str) -> None:
    """Forbidden unless a scope (None: the whole tenant) lies within the caller's own."""
    if not caller.covers(warehouses):
        assert caller.warehouses is not None  # covers() is True for a tenant-wide caller
        raise Forbidden(
            f"this token is limited to warehouses {', '.join(sorted(caller.warehouses))}, so the "
            f"{what} it makes must be limited to some of them: list them in 'warehouses'"
        )


@router.get("/tokens", summary="List API tokens")
def list_tokens(caller: ManagesAccess, store: Store) -> Any:
    """The tenant's tokens, newest first, with id, scope, expiry, last use and state (never a secret)."""
    return {"tokens": access.list_tokens(store, caller.tenant_id, warehouses=caller.warehouses)}


@router.post("/tokens", status_code=201, summary="Create an API token (its secret is shown only now)")
def create_token(body: TokenIn, caller: ManagesAccess, store: Store) -> Any:
    """A new token for the caller's tenant; `token` in the answer is the secret, shown this once."""
    scope_within(caller, body.warehouses, "token")
    with store.unit_of_work():
        made = access.create_token(
            store,
            name=body.name,
            role=body.role,
            tenant=caller.tenant,
            warehouses=body.warehouses or (),
            expires_at=body.expiry(),
            created_by=caller.actor,
        )
        audit.record(store, caller, "create_token", "token", str(made.id), None, made.token)
    return {**made.token, "token": made.secret}


@router.post("/tokens/{token_id}/revoke", summary="Revoke an API token for good")
def revoke_token(token_id: TokenId, caller: ManagesAccess, store: Store) -> Any:
    """The token answers 401 from the next request on, on every replica; 409 if revoked already."""
    with store.unit_of_work():
        before, after = access.revoke_token(store, caller.tenant_id, token_id, warehouses=caller.warehouses)
        audit.record(store, caller, "revoke_token", "token", str(token_id), before, after)
    return after
