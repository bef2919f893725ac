"""Who is calling: FastAPI dependencies for the store, the caller and the caller's permissions.

def handler(caller: EditsTemplates, ...)   # 401 or 403 before the handler runs
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from cloud.access import users
from cloud.access.principals import Principal, Unauthenticated, authenticate_api_token
from cloud.access.roles import Permission, require
from cloud.storage.store import CloudStore

__all__ = [
    "Caller",
    "EditsRulesets",
    "EditsTemplates",
    "EnrollsAgents",
    "ErasesPersonalData",
    "IngestsOrders",
    "ManagesAccess",
    "ManagesOrders",
    "ManagesWebhooks",
    "ReadsAudit",
    "ReadsOrders",
    "ReadsReports",
    "ReadsSetup",
    "Store",
    "WorksExceptions",
    "WritesPackers",
    "WritesStations",
    "WritesWarehouses",
    "client_address",
    "principal",
    "store_of",
]

_bearer = HTTPBearer(auto_error=False, description="A token from `dockside-cloud create-token`.")


def store_of(request: Request) -> CloudStore:
    """The store the app was created with."""
    store: CloudStore = request.app.state.store
    return store


def client_address(request: Request) -> str:
    """The peer's address; behind a proxy, uvicorn's --forwarded-allow-ips decides what that is."""
    return request.client.host if request.client is not None else "unknown"


def principal(request: Request, _scheme: Annotated[Any, Security(_bearer)] = None) -> Principal:
    """The caller, from the Authorization header: an API token or a console session (401 otherwise)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Unauthenticated(
            "this call needs a bearer token: send 'Authorization: Bearer <token>' "
            "(create one with `dockside-cloud create-token --role admin --name NAME`)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must read 'Bearer <token>': fix the header")
    store = store_of(request)
    if token.startswith(users.SESSION_PREFIX):
        return users.authenticate_session(store, token)
    return authenticate_api_token(store, token, address=client_address(request))


Caller = Annotated[Principal, Depends(principal)]
Store = Annotated[CloudStore, Depends(store_of)]


def _granted(permission: Permission) -> Any:
    def check(caller: Caller) -> Principal:
        return require(caller, permission)

    check.__name__ = f"may_{permission.name.lower()}"
    return check


# The caller, once its role is known to grant the permission (403 before the handler runs).
ReadsSetup = Annotated[Principal, Depends(_granted(Permission.READ_SETUP))]
WritesWarehouses = Annotated[Principal, Depends(_granted(Permission.WRITE_WAREHOUSES))]
WritesStations = Annotated[Principal, Depends(_granted(Permission.WRITE_STATIONS))]
WritesPackers = Annotated[Principal, Depends(_granted(Permission.WRITE_PACKERS))]
EnrollsAgents = Annotated[Principal, Depends(_granted(Permission.ENROLL_AGENTS))]
EditsTemplates = Annotated[Principal, Depends(_granted(Permission.EDIT_TEMPLATES))]
EditsRulesets = Annotated[Principal, Depends(_granted(Permission.EDIT_RULESETS))]
IngestsOrders = Annotated[Principal, Depends(_granted(Permission.INGEST_ORDERS))]
ReadsOrders = Annotated[Principal, Depends(_granted(Permission.READ_ORDERS))]
ManagesOrders = Annotated[Principal, Depends(_granted(Permission.MANAGE_ORDERS))]
WorksExceptions = Annotated[Principal, Depends(_granted(Permission.WORK_EXCEPTIONS))]
ReadsReports = Annotated[Principal, Depends(_granted(Permission.READ_REPORTS))]
ReadsAudit = Annotated[Principal, Depends(_granted(Permission.READ_AUDIT))]
ManagesWebhooks = Annotated[Principal, Depends(_granted(Permission.MANAGE_WEBHOOKS))]
ManagesAccess = Annotated[Principal, Depends(_granted(Permission.MANAGE_ACCESS))]
ErasesPersonalData = Annotated[Principal, Depends(_granted(Permission.ERASE_PERSONAL_DATA))]
