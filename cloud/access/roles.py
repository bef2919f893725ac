"""What each role may do in the admin API, and the warehouse scope every query is filtered by.

    admin        everything, including warehouses, enrollment tokens, API tokens and users
    editor       templates, rulesets, stations, packers, order states and exceptions; reads everything
                 in scope
    viewer       reads everything in scope, writes nothing
    integration  the OMS: ingests, reads and cancels orders, reads exceptions, nothing else

A token limited to some warehouses sees the rest of its tenant as if it did not exist: another
warehouse's (or tenant's) objects answer 404, never 403, so a scope reveals nothing beyond itself.
"""

from __future__ import annotations

from enum import StrEnum

from cloud.access.principals import Principal, Role
from dockside.errors import DocksideError, NotFound

__all__ = ["GRANTS", "Forbidden", "Permission", "require", "require_warehouse"]


class Forbidden(DocksideError):
    """The caller is known but its role may not do this."""

    code = "forbidden"
    http_status = 403


class Permission(StrEnum):
    """One kind of admin API call, as the permission table names it."""

    READ_SETUP = "read warehouses, stations, templates, rulesets and agents"
    WRITE_WAREHOUSES = "create or change warehouses"
    WRITE_STATIONS = "create or change stations"
    WRITE_PACKERS = "create or change packers"
    ENROLL_AGENTS = "create enrollment tokens"
    EDIT_TEMPLATES = "create and publish templates"
    EDIT_RULESETS = "edit, simulate and publish rulesets"
    INGEST_ORDERS = "ingest orders"
    READ_ORDERS = "read orders"
    MANAGE_ORDERS = "change an order's state or cancel it"
    WORK_EXCEPTIONS = "assign, acknowledge and resolve exceptions"
    READ_AUDIT = "read and export the audit log"
    READ_REPORTS = "read packing reports"
    ERASE_PERSONAL_DATA = "erase an order's personal data"
    MANAGE_WEBHOOKS = "manage webhook subscriptions"
    MANAGE_ACCESS = "create, list and revoke API tokens, manage users and alert thresholds"


_ALL = frozenset(Role)
_STAFF = frozenset({Role.ADMIN, Role.EDITOR, Role.VIEWER})
_EDITORS = frozenset({Role.ADMIN, Role.EDITOR})

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.READ_SETUP: _STAFF,
    Permission.WRITE_WAREHOUSES: frozenset({Role.ADMIN}),
    Permission.WRITE_STATIONS: _EDITORS,
    Permission.WRITE_PACKERS: _EDITORS,
    Permission.ENROLL_AGENTS: frozenset({Role.ADMIN}),
    Permission.EDIT_TEMPLATES: _EDITORS,
    Permission.EDIT_RULESETS: _EDITORS,
    Permission.INGEST_ORDERS: frozenset({Role.ADMIN, Role.INTEGRATION}),
    Permission.READ_ORDERS: _ALL,
    Permission.MANAGE_ORDERS: frozenset({Role.ADMIN, Role.EDITOR, Role.INTEGRATION}),
    Permission.WORK_EXCEPTIONS: _EDITORS,
    Permission.READ_AUDIT: frozenset({Role.ADMIN}),
    Permission.READ_REPORTS: _STAFF,
    Permission.ERASE_PERSONAL_DATA: frozenset({Role.ADMIN}),
    Permission.MANAGE_WEBHOOKS: frozenset({Role.ADMIN}),
    Permission.MANAGE_ACCESS: frozenset({Role.ADMIN}),
}


def require(caller: Principal, permission: Permission) -> Principal:
    """The caller, if its role grants `permission`; Forbidden (403) naming the roles that may."""
    allowed = GRANTS[permission]
    if caller.role not in allowed:
        roles = ", ".join(sorted(role.value for role in allowed))
        raise Forbidden(
            f"this token's role ({caller.role.value}) may not {permission.value}: "
            f"use a token with role {roles}"
        )
    return caller


def require_warehouse(caller: Principal, code: str) -> str:
    """The warehouse code, if the caller's scope covers it; otherwise the same 404 as a missing one."""
    if not caller.sees(code):
        raise NotFound(f"there is no warehouse {code!r}: create it with POST /api/v1/warehouses first")
    return code
