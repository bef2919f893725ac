"""Limits on failed console sign-ins that keep attackers out without locking the owner out.

    attempt = begin_attempt(store, email, client, known_address=...)   # SignInLimited (429) or go on
    ... verify password and TOTP ...
    attempt.succeeded(store)  or  failures = attempt.failed(store)

The policy (README, "Access"):

- Per client address: `ADDRESS_LIMIT` failures within `WINDOW` lock that address out for
  `LOCKOUT`, whatever account it tries. This is what stops one attacker.
- Per account: after `ACCOUNT_FREE` failures within `WINDOW`, each further failure makes the
  account wait before its next checked attempt, doubling from 1 s up to `ACCOUNT_MAX_DELAY`.
  While it waits, attempts from addresses the account has never signed in from get 429 with
  `Retry-After` and are not checked (so an attacker spread over many addresses gets one guess
  per delay) and not counted (so they never lengthen the wait). Attempts from an address the
  account has signed in from before (`known_address`) are always checked: the owner's correct
  password and code get in while someone elsewhere hammers the account. There is no lock an
  attacker can renew: the longest anyone waits for an account is `ACCOUNT_MAX_DELAY`.

An attempt counts as a failure from the moment it begins (so a hundred guesses sent at once get
no further than the first few) until it succeeds, which clears the account's count and takes the
attempt back from the address's.

The counters live in the database (table sign_in_failures), keyed by a hash of the lower-cased
email or the address, so replicas behind one load balancer count together and an unknown email
is never stored. Why not a library: the maintained rate limiters (`limits`, `slowapi`) keep their
counters in process memory, Redis, Memcached or MongoDB, none of which Dockside runs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import DocksideError

__all__ = [
    "ACCOUNT_FREE",
    "ACCOUNT_MAX_DELAY",
    "ADDRESS_LIMIT",
    "LOCKOUT",
    "WINDOW",
    "SignInAttempt",
    "SignInLimited",
    "account_delay",
    "begin_attempt",
]

ACCOUNT_FREE = 5
ACCOUNT_MAX_DELAY = timedelta(seconds=60)
# Higher than the account's: a warehouse's packers may share one public address.
ADDRESS_LIMIT = 20
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)


class SignInLimited(DocksideError):
    """Too many failed sign-ins for this account or from this address; `retry_after_s` says when."""

    code = "too_many_sign_in_attempts"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """One sign-in under way, already counted as a failure until it succeeds."""

    account_key: str
    address_key: str

    def succeeded(self, store: CloudStore) -> None:
        """Clear the account's failures and take this attempt back from the address's count."""
        table = schema.sign_in_failures
        with store.write() as tx:
            tx.conn.execute(delete(table).where(table.c.key_hash == self.account_key))
            tx.conn.execute(
                update(table)
                .where(table.c.key_hash == self.address_key, table.c.failures > 0)
                .values(failures=table.c.failures - 1)
            )

    def failed(self, store: CloudStore) -> int:
        """Keep the failure: lock an address at its limit, slow the account down past its free
        failures; returns the account's failures within the window."""
        table = schema.sign_in_failures
        with store.write() as tx:
            tx.conn.execute(
                update(table)
                .where(
                    table.c.key_hash == self.address_key,
                    table.c.failures >= ADDRESS_LIMIT,
                    table.c.locked_until.is_(None),
                )
                .values(locked_until=tx.now + LOCKOUT)
            )
            failures = tx.conn.execute(
                select(table.c.failures).where(table.c.key_hash == self.account_key)
            ).scalar()
            if failures is not None and failures >= ACCOUNT_FREE:
                tx.conn.execute(
                    update(table)
                    .where(table.c.key_hash == self.account_key)
                    .values(locked_until=tx.now + account_delay(int(failures)))
                )
            else:
                tx.conn.execute(
                    update(table).where(table.c.key_hash == self.account_key).values(locked_until=None)
                )
        return int(failures or 0)


def account_delay(failures: int) -> timedelta:
    """How long an account waits after its `failures`-th failure (none before ACCOUNT_FREE)."""
    if failures < ACCOUNT_FREE:
        return timedelta(0)
    return min(timedelta(seconds=2 ** min(failures - ACCOUNT_FREE, 20)), ACCOUNT_MAX_DELAY)


def begin_attempt(
    store: CloudStore,
    email: str,
    address: str,
    *,
    known_address: bool = False,
    now: datetime | None = None,
) -> SignInAttempt:
    """Count a sign-in attempt for `email` from `address`, or refuse it (SignInLimited).

    `known_address`: the account has signed in from this address before, so the account's
    slow-down does not apply (the address's own limit still does).
    """
    attempt = SignInAttempt(_key("account", email.strip().lower()), _key("address", address))
    with store.write() as tx:
        moment = now or tx.now
        _forget_old(tx.conn, tx.dialect, moment)
        table = schema.sign_in_failures
        rows: dict[str, Any] = {}
        for key in (attempt.address_key, attempt.account_key):
            _ensure_row(tx.conn, tx.dialect, key, moment)
            rows[key] = tx.conn.execute(
                _locked(select(table).where(table.c.key_hash == key), tx.dialect)
            ).one()
        address_row, account_row = rows[attempt.address_key], rows[attempt.account_key]
        waits: list[tuple[float, str]] = []
        if address_row.locked_until is not None and address_row.locked_until > moment:
            waits.append(((address_row.locked_until - moment).total_seconds(), "address"))
        elif address_row.failures >= ADDRESS_LIMIT and address_row.window_started_at + WINDOW > moment:
            # The limit is taken by attempts still under way: wait for the window to pass.
            waits.append(((address_row.window_started_at + WINDOW - moment).total_seconds(), "address"))
        slowed = account_row.failures >= ACCOUNT_FREE and account_row.window_started_at + WINDOW > moment
        if not known_address and account_row.locked_until is not None and account_row.locked_until > moment:
            waits.append(((account_row.locked_until - moment).total_seconds(), "account"))
        if waits:
            seconds, what = max(waits)
            raise SignInLimited(_refusal(what, seconds), max(1, math.ceil(seconds)))
        if slowed and not known_address:
            # One checked attempt at a time: hold the account until this one fails or succeeds.
            tx.conn.execute(
                update(table)
                .where(table.c.key_hash == attempt.account_key)
                .values(locked_until=moment + ACCOUNT_MAX_DELAY)
            )
        _count(tx.conn, attempt.account_key, moment, lock_ends_count=False)
        _count(tx.conn, attempt.address_key, moment, lock_ends_count=True)
    return attempt


def _refusal(what: str, seconds: float) -> str:
    if what == "account":
        wait = f"{max(1, math.ceil(seconds))} s"
        return (
            f"too many failed sign-ins for this account: wait {wait} and try again, and check the "
            "email, password and the current code from your authenticator app"
        )
    minutes = max(1, math.ceil(seconds / 60))
    plural = "s" if minutes > 1 else ""
    return (
        f"too many failed sign-ins from your network address: wait {minutes} minute{plural} "
        "and try again, and check the email, password and the current code from your authenticator app"
    )


def _locked(query: Any, dialect: str) -> Any:
    # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock.
    return query.with_for_update() if dialect == "postgresql" else query


def _ensure_row(conn: Connection, dialect: str, key: str, moment: datetime) -> None:
    values = {"key_hash": key, "failures": 0, "window_started_at": moment, "locked_until": None}
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(schema.sign_in_failures)
    conn.execute(statement.values(**values).on_conflict_do_nothing(index_elements=["key_hash"]))


def _count(conn: Connection, key: str, moment: datetime, *, lock_ends_count: bool) -> None:
    table = schema.sign_in_failures
    row = conn.execute(select(table).where(table.c.key_hash == key)).one()
    if row.window_started_at + WINDOW <= moment or (
        lock_ends_count and row.locked_until is not None and row.locked_until <= moment
    ):
        # The window (or an address's lock) is over: this attempt starts a new count; an account's
        # wait ending does not, or its delay would never grow.
        conn.execute(
            update(table)
            .where(table.c.key_hash == key)
            .values(failures=1, window_started_at=moment, locked_until=None)
        )
    else:
        conn.execute(update(table).where(table.c.key_hash == key).values(failures=table.c.failures + 1))


def _forget_old(conn: Connection, dialect: str, moment: datetime) -> None:
    """Drop counters whose window and lock are both over, so the table stays small."""
    table = schema.sign_in_failures
    old = select(table.c.key_hash).where(
        table.c.window_started_at < moment - WINDOW - LOCKOUT,
        or_(table.c.locked_until.is_(None), table.c.locked_until < moment),
    )
    if dialect == "postgresql":
        # Never wait on (or deadlock with) another sign-in that holds one of these rows.
        old = old.with_for_update(skip_locked=True)
    conn.execute(delete(table).where(table.c.key_hash.in_(old.limit(1000).scalar_subquery())))
