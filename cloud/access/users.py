"""Console users: sign in with a password (argon2) and a TOTP code, get a session token.

Machines use API tokens; people use sessions. A session token is a bearer token like an API
token (stored hashed, prefix `dss_`) that acts with its user's role, tenant and warehouses until
it expires or the user signs out. A failed sign-in never says which of the three parts was wrong.

A user can be disabled (every session ends at once, sign-in refused), enabled again, and have
the password or the TOTP secret reset (a new one is made and shown once; every session ends).
The TOTP secret is sealed at rest (cloud/storage/sealed_secrets.py). In the audit log a user is
`user:<id>`, with the email beside it.

A TOTP code is accepted once: the time step it belongs to is stored with the user
(`totp_last_step`), and a code of that step or an earlier one is refused, so a code seen over a
shoulder or replayed from a log is worthless once used, even within its 30 s (or 90 s) window.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import Connection, insert, or_, select, update

from cloud.access import alerts, sign_in_limits
from cloud.access.credentials import hash_secret, new_secret
from cloud.access.principals import Principal, Role, Unauthenticated
from cloud.storage import schema
from cloud.storage.sealed_secrets import is_sealed, seal, unseal
from cloud.storage.store import CloudStore, utcnow
from dockside.errors import DocksideError, InputError, NotFound
from dockside.typed_secrets import hash_typed, matches, unmatchable_hash

__all__ = [
    "SESSION_PREFIX",
    "SESSION_TTL",
    "NewUser",
    "UserReset",
    "authenticate_session",
    "create_user",
    "disable_user",
    "enable_user",
    "end_session",
    "list_users",
    "reset_password",
    "reset_totp",
    "sign_in",
    "user_by_email",
]

SESSION_PREFIX = "dss_"
SESSION_TTL = timedelta(hours=12)
_WRONG = (
    "the email, password or code is wrong: check them and try again "
    "(codes change every 30 s, and each code works only once: wait for the next one)"
)
# Codes of the step before and after the current one are accepted too (clock drift, typing time).
_TOTP_DRIFT_STEPS = 1


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user just created: the TOTP secret and its provisioning URI are shown only this once."""

    email: str
    totp_secret: str
    provisioning_uri: str
    id: int = 0
    user: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class UserReset:
    """A user after a reset: the new password or TOTP secret is shown only this once."""

    before: dict[str, Any]
    after: dict[str, Any]
    password: str | None = None
    totp_secret: str | None = None
    provisioning_uri: str | None = None


def create_user(
    store: CloudStore,
    *,
    email: str,
    name: str,
    password: str,
    role: Role,
    tenant: str = schema.DEFAULT_TENANT,
    warehouses: Collection[str] = (),
) -> NewUser:
    """Store a console user with an argon2 password hash and a fresh TOTP secret."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InputError("a user's email must look like name@example.com and be at most 254 characters")
    if not name.strip() or len(name) > 100:
        raise InputError("a user's name is 1 to 100 characters")
    _check_password(password)
    secret = pyotp.random_base32()
    with store.write() as tx:
        tenant_id = tx.conn.execute(
            select(schema.tenants.c.id).where(schema.tenants.c.code == tenant)
        ).scalar()
        if tenant_id is None:
            raise NotFound(f"there is no tenant {tenant!r}: create it first")
        taken = tx.conn.execute(select(schema.users.c.id).where(schema.users.c.email == email)).scalar()
        if taken is not None:
            raise DocksideError(f"there is already a user {email}: pick another email", code="user_exists")
        user_id = tx.conn.execute(
            insert(schema.users)
            .values(
                tenant_id=tenant_id,
                email=email,
                name=name,
                role=role.value,
                warehouses=",".join(sorted({code for code in warehouses if code})),
                password_hash=hash_typed(password),
                totp_secret=seal(secret),
                created_at=tx.now,
            )
            .returning(schema.users.c.id)
        ).scalar_one()
        body = _user_body(tx.conn.execute(select(schema.users).where(schema.users.c.id == user_id)).one())
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Dockside")
    return NewUser(email=email, totp_secret=secret, provisioning_uri=uri, id=int(user_id), user=body)


def _check_password(password: str) -> None:
    if len(password) < 12 or len(password) > 1000:
        raise InputError("a password is 12 to 1,000 characters: pick a longer one")


def _user_body(row: Any) -> dict[str, Any]:
    """A user as the API shows it: never the password hash or the TOTP secret."""
    return {
        "id": int(row.id),
        "email": row.email,
        "name": row.name,
        "role": row.role,
        "warehouses": sorted(row.warehouses.split(",")) if row.warehouses else None,
        "created_at": row.created_at.isoformat(),
        "disabled_at": row.disabled_at.isoformat() if row.disabled_at is not None else None,
        "active": row.disabled_at is None,
    }


def _in_scope(row: Any, scope: frozenset[str] | None) -> bool:
    # A caller limited to some warehouses manages only users limited to some of the same.
    return scope is None or (bool(row.warehouses) and set(row.warehouses.split(",")) <= scope)


def list_users(
    store: CloudStore, tenant_id: int, *, warehouses: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """A tenant's users (in the caller's scope), by id."""
    users = schema.users
    with store.read() as conn:
        rows = conn.execute(select(users).where(users.c.tenant_id == tenant_id).order_by(users.c.id)).all()
    return [_user_body(row) for row in rows if _in_scope(row, warehouses)]


def _owned(conn: Connection, tenant_id: int, user_id: int, scope: frozenset[str] | None) -> Any:
    users = schema.users
    row = conn.execute(select(users).where(users.c.id == user_id, users.c.tenant_id == tenant_id)).first()
    if row is None or not _in_scope(row, scope):
        raise NotFound(f"there is no user {user_id}: list users with GET /api/v1/users")
    return row


def _end_sessions(conn: Connection, user_id: int, now: datetime) -> None:
    sessions = schema.user_sessions
    conn.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _change_user(
    store: CloudStore, tenant_id: int, user_id: int, scope: frozenset[str] | None, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    users = schema.users
    with store.write() as tx:
        before = _user_body(_owned(tx.conn, tenant_id, user_id, scope))
        tx.conn.execute(update(users).where(users.c.id == user_id).values(**values))
        # Every change here takes something away or replaces a credential: no session outlives it.
        _end_sessions(tx.conn, user_id, tx.now)
        after = _user_body(tx.conn.execute(select(users).where(users.c.id == user_id)).one())
    return before, after


def user_by_email(store: CloudStore, email: str) -> tuple[str, int]:
    """(tenant code, user id) of the user with `email`, or NotFound."""
    users = schema.users
    with store.read() as conn:
        row = conn.execute(
            select(users.c.id, schema.tenants.c.code)
            .join(schema.tenants, schema.tenants.c.id == users.c.tenant_id)
            .where(users.c.email == email.strip().lower())
        ).first()
    if row is None:
        raise NotFound(
            f"there is no user {email}: check the email (create users with `dockside-cloud create-user`)"
        )
    return str(row.code), int(row.id)


def disable_user(
    store: CloudStore, tenant_id: int, user_id: int, *, warehouses: frozenset[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Disable a user: sign-in is refused and every session ends at once; returns (before, after)."""
    return _change_user(store, tenant_id, user_id, warehouses, {"disabled_at": utcnow()})


def enable_user(
    store: CloudStore, tenant_id: int, user_id: int, *, warehouses: frozenset[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Let a disabled user sign in again (with the same password and TOTP); returns (before, after)."""
    return _change_user(store, tenant_id, user_id, warehouses, {"disabled_at": None})


def reset_password(
    store: CloudStore,
    tenant_id: int,
    user_id: int,
    *,
    password: str | None = None,
    warehouses: frozenset[str] | None = None,
) -> UserReset:
    """Give a user a new password (`password`, or a random one shown once); every session ends."""
    new = password if password is not None else secrets.token_urlsafe(18)
    _check_password(new)
    before, after = _change_user(store, tenant_id, user_id, warehouses, {"password_hash": hash_typed(new)})
    return UserReset(before=before, after=after, password=None if password is not None else new)


def reset_totp(
    store: CloudStore, tenant_id: int, user_id: int, *, warehouses: frozenset[str] | None = None
) -> UserReset:
    """Give a user a new TOTP secret (shown once, for their authenticator app); every session ends."""
    secret = pyotp.random_base32()
    before, after = _change_user(
        store, tenant_id, user_id, warehouses, {"totp_secret": seal(secret), "totp_last_step": None}
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=after["email"], issuer_name="Dockside")
    return UserReset(before=before, after=after, totp_secret=secret, provisioning_uri=uri)


def sign_in(
    store: CloudStore,
    *,
    email: str,
    password: str,
    code: str,
    address: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A new session for a user whose password and current TOTP code are right; else Unauthenticated.

    `address` is the client's network address. Failures count per account and per address
    (cloud.access.sign_in_limits): past the limit the answer is SignInLimited (429) for a while. `now` is
    the time the code is checked against (tests move it; the default is the clock).
    """
    users = schema.users
    with store.read() as conn:
        known = conn.execute(
            select(users.c.id, users.c.tenant_id, users.c.email).where(users.c.email == email.strip().lower())
        ).first()
    actor = f"user:{known.id}" if known is not None else None
    trusted = actor is not None and alerts.is_known_address(store, actor, address)
    attempt = sign_in_limits.begin_attempt(store, email, address, known_address=trusted)
    try:
        answer = _verified_session(store, email=email, password=password, code=code, now=now or utcnow())
    except Unauthenticated:
        failures = attempt.failed(store)
        if known is not None and actor is not None:
            alerts.failed_sign_ins(
                store,
                tenant_id=int(known.tenant_id),
                actor=actor,
                name=known.email,
                address=address,
                failures=failures,
            )
        raise
    attempt.succeeded(store)
    if known is not None and actor is not None:
        alerts.seen_at(
            store,
            tenant_id=int(known.tenant_id),
            actor=actor,
            name=known.email,
            address=address,
            kind=alerts.AlertKind.NEW_SIGN_IN_ADDRESS,
        )
    return answer


def _totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (Unix time // 30) whose code `code` is, near `now`; None if it is none of them."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - _TOTP_DRIFT_STEPS, current + _TOTP_DRIFT_STEPS + 1):
        if pyotp.utils.strings_equal(code, totp.generate_otp(step)):
            return step
    return None


def _verified_session(
    store: CloudStore, *, email: str, password: str, code: str, now: datetime
) -> dict[str, Any]:
    users = schema.users
    with store.read() as conn:
        user = conn.execute(
            select(users).where(users.c.email == email.strip().lower(), users.c.disabled_at.is_(None))
        ).first()
    # An unknown email is checked against a hash too: it costs as long as a wrong password.
    if not matches(user.password_hash if user is not None else unmatchable_hash(), password):
        raise Unauthenticated(_WRONG)
    step = _totp_step(unseal(user.totp_secret), code.strip(), now) if user is not None else None
    if user is None or step is None:
        raise Unauthenticated(_WRONG)
    token = new_secret(SESSION_PREFIX)
    with store.write() as tx:
        # Claim the step: of two sign-ins with one code (even at the same moment) only one gets it.
        claimed = tx.conn.execute(
            update(users)
            .where(
                users.c.id == user.id,
                or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        if not is_sealed(user.totp_secret):
            # A secret an older release stored in clear: seal it now that it is read anyway.
            tx.conn.execute(
                update(users).where(users.c.id == user.id).values(totp_secret=seal(user.totp_secret))
            )
        if claimed.rowcount != 1:
            raise Unauthenticated(_WRONG)
        expires = tx.now + SESSION_TTL
        tx.conn.execute(
            insert(schema.user_sessions).values(
                user_id=user.id, token_hash=hash_secret(token), created_at=tx.now, expires_at=expires
            )
        )
    return {
        "token": token,
        "expires_at": expires.isoformat(),
        "name": user.name,
        "role": user.role,
        "warehouses": sorted(user.warehouses.split(",")) if user.warehouses else None,
    }


def authenticate_session(store: CloudStore, token: str) -> Principal:
    """The principal behind a session token, or Unauthenticated when it is unknown, over or ended."""
    sessions, users = schema.user_sessions, schema.users
    with store.read() as conn:
        row = conn.execute(
            select(
                users.c.id, users.c.tenant_id, users.c.name, users.c.email, users.c.role, users.c.warehouses
            )
            .add_columns(schema.tenants.c.code, sessions.c.expires_at)
            .join(users, users.c.id == sessions.c.user_id)
            .join(schema.tenants, schema.tenants.c.id == users.c.tenant_id)
            .where(
                sessions.c.token_hash == hash_secret(token),
                sessions.c.revoked_at.is_(None),
                users.c.disabled_at.is_(None),
            )
        ).first()
    if row is None or row.expires_at <= utcnow():
        raise Unauthenticated("this session is over or unknown: sign in again (POST /api/v1/session)")
    return Principal(
        tenant_id=int(row.tenant_id),
        token_name=row.email,
        role=Role(row.role),
        tenant=row.code,
        warehouses=frozenset(row.warehouses.split(",")) if row.warehouses else None,
        actor=f"user:{row.id}",
    )


def end_session(store: CloudStore, token: str) -> None:
    """Sign out: the session token stops working at once."""
    sessions = schema.user_sessions
    with store.write() as tx:
        tx.conn.execute(
            update(sessions)
            .where(sessions.c.token_hash == hash_secret(token), sessions.c.revoked_at.is_(None))
            .values(revoked_at=tx.now)
        )
