"""Who is calling the admin API: API tokens, their tenant, role, warehouse scope and life cycle.

A token belongs to one tenant and may be limited to some of its warehouses; `cloud.access.roles` says
what each role may do, and every query runs for the caller's tenant and warehouse scope.

A token has an id (its actor id in the audit log is `token:<id>`), may expire, is revoked for
good, and remembers when it was last used. Every request reads the token's row, so a revoked or
expired token is refused at once by every replica: there is no cache to outlive a revocation.
`last_used_at` is written at most once a minute per token and process (`LAST_USE_PRECISION`),
so the hot path does not turn every read into a write.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cloud.access import alerts
from cloud.access.credentials import API_TOKEN_PREFIX, hash_secret, new_secret
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from dockside.errors import DocksideError, InputError, NotFound

__all__ = [
    "LAST_USE_PRECISION",
    "MAX_TOKEN_LIFETIME",
    "NewToken",
    "Principal",
    "Role",
    "TokenRevoked",
    "Unauthenticated",
    "authenticate_api_token",
    "cli_principal",
    "create_api_token",
    "create_tenant",
    "create_token",
    "list_tokens",
    "revoke_token",
]

LAST_USE_PRECISION = timedelta(minutes=1)
MAX_TOKEN_LIFETIME = timedelta(days=5 * 366)


class Role(StrEnum):
    """What an API token may do (see `cloud.access.roles` for the permission table)."""

    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    INTEGRATION = "integration"


class Unauthenticated(DocksideError):
    """The admin API call has no valid bearer token."""

    code = "unauthenticated"
    http_status = 401


class TokenRevoked(DocksideError):
    """The token is revoked already; revoking is for good and happens once."""

    code = "token_revoked"
    http_status = 409


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an admin API request (or the person at the CLI)."""

    tenant_id: int
    # The display name: a token's name, a user's email, the CLI's OS user.
    token_name: str
    role: Role
    tenant: str = schema.DEFAULT_TENANT
    # None: every warehouse of the tenant; otherwise only these warehouse codes.
    warehouses: frozenset[str] | None = None
    # The unique id the audit log names: token:<id>, user:<id> or cli:<os user>.
    actor: str = "system"

    def sees(self, warehouse: str) -> bool:
        """Whether this caller may see warehouse `warehouse` of its tenant."""
        return self.warehouses is None or warehouse in self.warehouses

    def covers(self, warehouses: Collection[str] | None) -> bool:
        """Whether a scope (None: the whole tenant) lies within this caller's own."""
        if self.warehouses is None:
            return True
        return warehouses is not None and bool(warehouses) and set(warehouses) <= self.warehouses


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: the secret is shown only this once."""

    id: int
    secret: str
    token: dict[str, Any]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


def cli_principal(store: CloudStore, tenant: str = schema.DEFAULT_TENANT) -> Principal:
    """The person running `dockside-cloud` on the server: an admin of `tenant`, named by OS user."""
    user = _os_user()[:90]
    with store.read() as conn:
        tenant_id = conn.execute(select(schema.tenants.c.id).where(schema.tenants.c.code == tenant)).scalar()
    if tenant_id is None:
        raise NotFound(f"there is no tenant {tenant!r}: use {schema.DEFAULT_TENANT!r} or create it first")
    return Principal(
        tenant_id=int(tenant_id), token_name=user, role=Role.ADMIN, tenant=tenant, actor=f"cli:{user}"
    )


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


def _state(row: Any, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _token_body(row: Any, codes: Collection[str], now: datetime) -> dict[str, Any]:
    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": int(row.id),
        "name": row.name,
        "role": row.role,
        "warehouses": sorted(codes) if codes else None,
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "expires_at": moment(row.expires_at),
        "last_used_at": moment(row.last_used_at),
        "revoked_at": moment(row.revoked_at),
        "state": _state(row, now),
    }


def _scopes(conn: Connection, token_ids: list[int]) -> dict[int, list[str]]:
    scope = schema.api_token_warehouses
    found: dict[int, list[str]] = {}
    if token_ids:
        for row in conn.execute(select(scope).where(scope.c.token_id.in_(token_ids))):
            found.setdefault(int(row.token_id), []).append(row.warehouse_code)
    return found


def create_token(
    store: CloudStore,
    *,
    name: str,
    role: Role,
    tenant: str = schema.DEFAULT_TENANT,
    warehouses: Collection[str] = (),
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> NewToken:
    """Store a new API token (hashed); the answer holds the secret, shown only this once.

    With `warehouses`, the token sees only those warehouses of its tenant (and their orders).
    `expires_at` (at most MAX_TOKEN_LIFETIME ahead) ends it on its own; None: until revoked.
    """
    if not name.strip() or len(name) > 100:
        raise InputError("a token name is 1 to 100 characters: pick a short name")
    now = utcnow()
    if expires_at is not None and not now < expires_at <= now + MAX_TOKEN_LIFETIME:
        raise InputError("a token's expiry is in the future and at most 5 years ahead: pick another")
    secret = new_secret(API_TOKEN_PREFIX)
    tokens = schema.api_tokens
    with store.write() as tx:
        tenant_id = tx.conn.execute(
            select(schema.tenants.c.id).where(schema.tenants.c.code == tenant)
        ).scalar()
        if tenant_id is None:
            raise NotFound(f"there is no tenant {tenant!r}: use {schema.DEFAULT_TENANT!r} or create it first")
        token_id = int(
            tx.conn.execute(
                insert(tokens)
                .values(
                    tenant_id=tenant_id,
                    name=name,
                    role=role.value,
                    token_hash=hash_secret(secret),
                    created_at=tx.now,
                    expires_at=expires_at,
                    created_by=created_by[:100] if created_by else None,
                )
                .returning(tokens.c.id)
            ).scalar_one()
        )
        codes = sorted({code for code in warehouses if code})
        if codes:
            tx.conn.execute(
                insert(schema.api_token_warehouses),
                [{"token_id": token_id, "warehouse_code": code} for code in codes],
            )
        row = tx.conn.execute(select(tokens).where(tokens.c.id == token_id)).one()
        body = _token_body(row, codes, tx.now)
    return NewToken(id=token_id, secret=secret, token=body)


def create_api_token(
    store: CloudStore,
    *,
    name: str,
    role: Role,
    tenant: str = schema.DEFAULT_TENANT,
    warehouses: Collection[str] = (),
    expires_at: datetime | None = None,
) -> str:
    """Store a new API token (hashed) and return the secret, which is shown only once."""
    return create_token(
        store, name=name, role=role, tenant=tenant, warehouses=warehouses, expires_at=expires_at
    ).secret


def _visible(caller_scope: frozenset[str] | None, codes: Collection[str]) -> bool:
    # A scoped caller sees tokens limited to its own warehouses only (404 for the rest).
    return caller_scope is None or (bool(codes) and set(codes) <= caller_scope)


def list_tokens(
    store: CloudStore, tenant_id: int, *, warehouses: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """A tenant's tokens (never their secrets), newest first; a scoped caller sees its scope's only."""
    tokens = schema.api_tokens
    now = utcnow()
    with store.read() as conn:
        rows = conn.execute(
            select(tokens).where(tokens.c.tenant_id == tenant_id).order_by(tokens.c.id.desc())
        ).all()
        scopes = _scopes(conn, [int(row.id) for row in rows])
    return [
        _token_body(row, scopes.get(int(row.id), []), now)
        for row in rows
        if _visible(warehouses, scopes.get(int(row.id), []))
    ]


def revoke_token(
    store: CloudStore, tenant_id: int, token_id: int, *, warehouses: frozenset[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Revoke a token for good (it answers 401 from the next request on); returns (before, after)."""
    tokens = schema.api_tokens
    with store.write() as tx:
        row = tx.conn.execute(
            select(tokens).where(tokens.c.id == token_id, tokens.c.tenant_id == tenant_id)
        ).first()
        codes = _scopes(tx.conn, [token_id]).get(token_id, []) if row is not None else []
        if row is None or not _visible(warehouses, codes):
            raise NotFound(f"there is no token {token_id}: list tokens with GET /api/v1/tokens")
        if row.revoked_at is not None:
            raise TokenRevoked(f"token {token_id} was revoked at {row.revoked_at.isoformat()}: nothing to do")
        before = _token_body(row, codes, tx.now)
        tx.conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=tx.now))
        after = _token_body(
            tx.conn.execute(select(tokens).where(tokens.c.id == token_id)).one(), codes, tx.now
        )
    return before, after


class _UseLedger:
    """When this process last wrote each token's last use, and the addresses it already noted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by the token's hash, not its id: ids repeat across databases (tests, restores).
        self._written: dict[str, float] = {}
        self._addresses: set[tuple[str, str]] = set()

    def due(self, token_hash: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._written.get(token_hash, -1e18) < LAST_USE_PRECISION.total_seconds():
                return False
            if len(self._written) > 100_000:
                self._written.clear()
            self._written[token_hash] = now
            return True

    def new_address(self, token_hash: str, address: str) -> bool:
        with self._lock:
            if (token_hash, address) in self._addresses:
                return False
            if len(self._addresses) > 100_000:
                self._addresses.clear()
            self._addresses.add((token_hash, address))
            return True


_LEDGER = _UseLedger()


def _note_use(store: CloudStore, row: Any, token_hash: str, address: str | None) -> None:
    token_id = int(row.id)
    if _LEDGER.due(token_hash):
        tokens = schema.api_tokens
        with store.write() as tx:
            tx.conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=tx.now))
    if address is not None and _LEDGER.new_address(token_hash, address):
        alerts.seen_at(
            store,
            tenant_id=int(row.tenant_id),
            actor=f"token:{token_id}",
            name=row.name,
            address=address,
            kind=alerts.AlertKind.TOKEN_NEW_ADDRESS,
        )


def authenticate_api_token(store: CloudStore, token: str, *, address: str | None = None) -> Principal:
    """The principal behind an API token's secret, or Unauthenticated (unknown, revoked, expired).

    `address` is the client's network address: a token seen at a new one raises an alert.
    """
    tokens = schema.api_tokens
    token_hash = hash_secret(token)
    with store.read() as conn:
        row = conn.execute(
            select(
                tokens.c.id,
                tokens.c.tenant_id,
                tokens.c.name,
                tokens.c.role,
                tokens.c.revoked_at,
                tokens.c.expires_at,
                schema.tenants.c.code,
            )
            .join(schema.tenants, schema.tenants.c.id == tokens.c.tenant_id)
            .where(tokens.c.token_hash == token_hash)
        ).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated(
                "this bearer token is unknown or revoked: create a new one with `dockside-cloud create-token`"
            )
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise Unauthenticated(
                f"this bearer token expired at {row.expires_at.isoformat()}: create a new one "
                "(POST /api/v1/tokens or `dockside-cloud create-token`)"
            )
        scope = schema.api_token_warehouses
        codes = conn.execute(select(scope.c.warehouse_code).where(scope.c.token_id == row.id)).scalars().all()
    _note_use(store, row, token_hash, address)
    return Principal(
        tenant_id=int(row.tenant_id),
        token_name=row.name,
        role=Role(row.role),
        tenant=row.code,
        warehouses=frozenset(codes) if codes else None,
        actor=f"token:{row.id}",
    )
