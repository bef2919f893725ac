"""Console users: list, create, disable, enable, reset password or TOTP (admin only, audited).

Disabling a user or resetting a credential ends every session of that user at once. An admin
limited to some warehouses manages only users limited to warehouses of its own (others answer
404) and creates only such users. New passwords and TOTP secrets are in the answer only once and
never in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from cloud.access import users
from cloud.access.callers import ManagesAccess, Store
from cloud.access.principals import Principal, Role
from cloud.api.tokens import scope_within
from cloud.records import audit
from cloud.storage.store import CloudStore

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
UserId = Annotated[int, Path(ge=1, le=2**62)]
_WAREHOUSE = r"^[A-Za-z0-9_.-]{1,32}$"


class UserIn(BaseModel):
    """A person who will sign in to the console."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[
        str, Field(min_length=3, max_length=254, pattern=r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")
    ]
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    password: Annotated[str, Field(min_length=12, max_length=1000)]
    role: Role = Role.VIEWER
    warehouses: Annotated[
        list[Annotated[str, Field(pattern=_WAREHOUSE)]] | None, Field(min_length=1, max_length=100)
    ] = None


class PasswordIn(BaseModel):
    """The new password; without it, a random one is made and shown once."""

    model_config = ConfigDict(extra="forbid")

    password: Annotated[str | None, Field(min_length=12, max_length=1000)] = None


@router.get("/users", summary="List console users")
def list_users(caller: ManagesAccess, store: Store) -> Any:
    """The tenant's users in the caller's scope, with whether each is active (never a secret)."""
    return {"users": users.list_users(store, caller.tenant_id, warehouses=caller.warehouses)}


def _create(store: CloudStore, caller: Principal, body: UserIn) -> users.NewUser:
    with store.unit_of_work():
        made = users.create_user(
            store,
            email=body.email,
            name=body.name,
            password=body.password,
            role=body.role,
            tenant=caller.tenant,
            warehouses=body.warehouses or (),
        )
        audit.record(store, caller, "create_user", "user", str(made.id), None, made.user)
    return made


@router.post("/users", status_code=201, summary="Create a console user (TOTP secret shown only now)")
async def create_user(body: UserIn, caller: ManagesAccess, store: Store) -> Any:
    """A new user of the caller's tenant; the answer holds the TOTP secret and URI, shown this once."""
    scope_within(caller, body.warehouses, "user")
    # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
    made = await run_in_threadpool(_create, store, caller, body)
    return {**(made.user or {}), "totp_secret": made.totp_secret, "provisioning_uri": made.provisioning_uri}


@router.post("/users/{user_id}/disable", summary="Disable a user and end their sessions")
def disable_user(user_id: UserId, caller: ManagesAccess, store: Store) -> Any:
    """The user's sessions answer 401 from now on, and sign-in is refused until enabled again."""
    with store.unit_of_work():
        before, after = users.disable_user(store, caller.tenant_id, user_id, warehouses=caller.warehouses)
        audit.record(store, caller, "disable_user", "user", str(user_id), before, after)
    return after


@router.post("/users/{user_id}/enable", summary="Enable a disabled user")
def enable_user(user_id: UserId, caller: ManagesAccess, store: Store) -> Any:
    """The user may sign in again with their password and TOTP."""
    with store.unit_of_work():
        before, after = users.enable_user(store, caller.tenant_id, user_id, warehouses=caller.warehouses)
        audit.record(store, caller, "enable_user", "user", str(user_id), before, after)
    return after


def _reset_password(
    store: CloudStore, caller: Principal, user_id: int, password: str | None
) -> users.UserReset:
    with store.unit_of_work():
        reset = users.reset_password(
            store, caller.tenant_id, user_id, password=password, warehouses=caller.warehouses
        )
        audit.record(store, caller, "reset_password", "user", str(user_id), reset.before, reset.after)
    return reset


@router.post("/users/{user_id}/reset-password", summary="Reset a user's password and end their sessions")
async def reset_password(
    user_id: UserId, caller: ManagesAccess, store: Store, body: PasswordIn | None = None
) -> Any:
    """Sets the given password, or makes a random one returned as `password` (shown this once)."""
    reset = await run_in_threadpool(_reset_password, store, caller, user_id, body.password if body else None)
    return {**reset.after, **({"password": reset.password} if reset.password else {})}


@router.post("/users/{user_id}/reset-totp", summary="Give a user a new TOTP secret and end their sessions")
def reset_totp(user_id: UserId, caller: ManagesAccess, store: Store) -> Any:
    """The answer holds the new TOTP secret and URI for the user's authenticator app, shown this once."""
    with store.unit_of_work():
        reset = users.reset_totp(store, caller.tenant_id, user_id, warehouses=caller.warehouses)
        audit.record(store, caller, "reset_totp", "user", str(user_id), reset.before, reset.after)
    return {**reset.after, "totp_secret": reset.totp_secret, "provisioning_uri": reset.provisioning_uri}
