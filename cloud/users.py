"""Console users: sign in with a password (argon2) and a TOTP code, get a session token.

Machines use API tokens; people use sessions. A session token is a bearer token like an API
token (stored hashed, prefix `dss_`) that acts with its user's role, tenant and warehouses until
it expires or the user signs out. A failed sign-in never says which of the three parts was wrong.

A TOTP code is accepted once: the time step it belongs to is stored with the user
(`totp_last_step`), and a code of that step or an earlier one is refused, so a code seen over a
shoulder or replayed from a log is worthless once used, even within its 30 s (or 90 s) window.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, or_, select, update

from cloud import schema, sign_in_limits
from cloud.access import Principal, Role, Unauthenticated
from cloud.credentials import hash_secret, new_secret
from cloud.store import CloudStore, utcnow
from dockside.errors import DocksideError, InputError, NotFound

__all__ = [
    "SESSION_PREFIX",
    "SESSION_TTL",
    "NewUser",
    "authenticate_session",
    "create_user",
    "end_session",
    "sign_in",
]

SESSION_PREFIX = "dss_"
SESSION_TTL = timedelta(hours=12)
_HASHER = PasswordHasher()
# Verified against when the email is unknown, so an unknown email costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("dockside-no-such-user")
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
    if len(password) < 12 or len(password) > 1000:
        raise InputError("a password is 12 to 1,000 characters: pick a longer one")
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
        tx.conn.execute(
            insert(schema.users).values(
                tenant_id=tenant_id,
                email=email,
                name=name,
                role=role.value,
                warehouses=",".join(sorted({code for code in warehouses if code})),
                password_hash=_HASHER.hash(password),
                totp_secret=secret,
                created_at=tx.now,
            )
        )
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Dockside")
    return NewUser(email=email, totp_secret=secret, provisioning_uri=uri)


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
    (cloud.sign_in_limits): past the limit the answer is SignInLimited (429) for a while. `now` is
    the time the code is checked against (tests move it; the default is the clock).
    """
    attempt = sign_in_limits.begin_attempt(store, email, address)
    try:
        answer = _verified_session(store, email=email, password=password, code=code, now=now or utcnow())
    except Unauthenticated:
        attempt.failed(store)
        raise
    attempt.succeeded(store)
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
    try:
        _HASHER.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthenticated(_WRONG) from None
    step = _totp_step(user.totp_secret, code.strip(), now) if user is not None else None
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
            select(users.c.tenant_id, users.c.name, users.c.email, users.c.role, users.c.warehouses)
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
