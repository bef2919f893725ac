"""Who is calling the admin API: bearer tokens, their tenant and their role.

Roles are recorded now and enforced by the roles work; every query already runs for one tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import insert, select

from cloud import schema
from cloud.credentials import API_TOKEN_PREFIX, hash_secret, new_secret
from cloud.store import CloudStore
from dockside.errors import DocksideError, NotFound

__all__ = ["Principal", "Role", "authenticate_api_token", "create_api_token"]


class Role(StrEnum):
    """What an API token may do (enforced by the roles work)."""

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


def create_api_token(store: CloudStore, *, name: str, role: Role, tenant: str = schema.DEFAULT_TENANT) -> str:
    """Store a new API token (hashed) and return the secret, which is shown only once."""
    if not name.strip() or len(name) > 100:
        raise DocksideError("a token name is 1 to 100 characters: pick a short name", code="invalid_input")
    token = new_secret(API_TOKEN_PREFIX)
    with store.write() as tx:
        tenant_id = tx.conn.execute(
            select(schema.tenants.c.id).where(schema.tenants.c.code == tenant)
        ).scalar()
        if tenant_id is None:
            raise NotFound(f"there is no tenant {tenant!r}: use {schema.DEFAULT_TENANT!r} or create it first")
        tx.conn.execute(
            insert(schema.api_tokens).values(
                tenant_id=tenant_id,
                name=name,
                role=role.value,
                token_hash=hash_secret(token),
                created_at=tx.now,
            )
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
    tokens = schema.api_tokens
    with store.read() as conn:
        row = conn.execute(
            select(tokens.c.tenant_id, tokens.c.name, tokens.c.role).where(
                tokens.c.token_hash == hash_secret(token), tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise Unauthenticated(
            "this bearer token is unknown or revoked: create a new one with `dockside-cloud create-token`"
        )
    return Principal(tenant_id=int(row.tenant_id), token_name=row.name, role=Role(row.role))
