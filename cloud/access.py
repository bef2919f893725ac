"""Who is calling the admin API: bearer tokens, their tenant, role and warehouse scope.

A token belongs to one tenant and may be limited to some of its warehouses; `cloud.roles` says
what each role may do, and every query runs for the caller's tenant and warehouse scope.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import insert, select

from cloud import schema
from cloud.credentials import API_TOKEN_PREFIX, hash_secret, new_secret
from cloud.store import CloudStore
from dockside.errors import DocksideError, NotFound

__all__ = [
    "Principal",
    "Role",
    "Unauthenticated",
    "authenticate_api_token",
    "create_api_token",
    "create_tenant",
]


class Role(StrEnum):
    """What an API token may do (see `cloud.roles` for the permission table)."""

    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    INTEGRATION = "integration"


class Unauthenticated(DocksideError):
    """The admin API call has no valid bearer token."""

    code = "unauthenticated"
    http_status = 401


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an admin API request."""

    tenant_id: int
    token_name: str
    role: Role
    tenant: str = schema.DEFAULT_TENANT
    # None: every warehouse of the tenant; otherwise only these warehouse codes.
    warehouses: frozenset[str] | None = None

    def sees(self, warehouse: str) -> bool:
        """Whether this caller may see warehouse `warehouse` of its tenant."""
        return self.warehouses is None or warehouse in self.warehouses


def create_tenant(store: CloudStore, *, code: str, name: str = "") -> int:
    """Create a tenant (a customer of the 3PL, or a business unit) and return its id."""
    if not code.strip() or len(code) > 32:
        raise DocksideError("a tenant code is 1 to 32 characters: pick a short code", code="invalid_input")
    with store.write() as tx:
        existing = tx.conn.execute(select(schema.tenants.c.id).where(schema.tenants.c.code == code)).scalar()
        if existing is not None:
            return int(existing)
        return int(
            tx.conn.execute(
                insert(schema.tenants)
                .values(code=code, name=name, created_at=tx.now)
                .returning(schema.tenants.c.id)
            ).scalar_one()
        )


def create_api_token(
    store: CloudStore,
    *,
    name: str,
    role: Role,
    tenant: str = schema.DEFAULT_TENANT,
    warehouses: Collection[str] = (),
) -> str:
    """Store a new API token (hashed) and return the secret, which is shown only once.

    With `warehouses`, the token sees only those warehouses of its tenant (and their orders).
    """
    if not name.strip() or len(name) > 100:
        raise DocksideError("a token name is 1 to 100 characters: pick a short name", code="invalid_input")
    token = new_secret(API_TOKEN_PREFIX)
    with store.write() as tx:
        tenant_id = tx.conn.execute(
            select(schema.tenants.c.id).where(schema.tenants.c.code == tenant)
        ).scalar()
        if tenant_id is None:
            raise NotFound(f"there is no tenant {tenant!r}: use {schema.DEFAULT_TENANT!r} or create it first")
        token_id = tx.conn.execute(
            insert(schema.api_tokens)
            .values(
                tenant_id=tenant_id,
                name=name,
                role=role.value,
                token_hash=hash_secret(token),
                created_at=tx.now,
            )
            .returning(schema.api_tokens.c.id)
        ).scalar_one()
        codes = sorted({code for code in warehouses if code})
        if codes:
            tx.conn.execute(
                insert(schema.api_token_warehouses),
                [{"token_id": token_id, "warehouse_code": code} for code in codes],
            )
    return token


def authenticate_api_token(store: CloudStore, authorization: str | None) -> Principal:
    """The principal behind an `Authorization: Bearer <token>` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated(
            "this call needs a bearer token: send 'Authorization: Bearer <token>' "
            "(create one with `dockside-cloud create-token --role admin --name NAME`)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("the Authorization header must read 'Bearer <token>': fix the header")
    if token.startswith("dss_"):
        # A console session (cloud.users imports this module, hence the late import).
        from cloud.users import authenticate_session

        return authenticate_session(store, token)
    tokens = schema.api_tokens
    with store.read() as conn:
        row = conn.execute(
            select(tokens.c.id, tokens.c.tenant_id, tokens.c.name, tokens.c.role, schema.tenants.c.code)
            .join(schema.tenants, schema.tenants.c.id == tokens.c.tenant_id)
            .where(tokens.c.token_hash == hash_secret(token), tokens.c.revoked_at.is_(None))
        ).first()
        if row is None:
            raise Unauthenticated(
                "this bearer token is unknown or revoked: create a new one with `dockside-cloud create-token`"
            )
        scope = schema.api_token_warehouses
        codes = conn.execute(select(scope.c.warehouse_code).where(scope.c.token_id == row.id)).scalars().all()
    return Principal(
        tenant_id=int(row.tenant_id),
        token_name=row.name,
        role=Role(row.role),
        tenant=row.code,
        warehouses=frozenset(codes) if codes else None,
    )
