"""Limits on failed console sign-ins, per account and per client address, shared by every replica.

    attempt = begin_attempt(store, email, client)   # SignInLimited (429) when either is locked
    ... verify password and TOTP ...
    attempt.succeeded(store)  or  attempt.failed(store)

An attempt counts as a failure from the moment it begins (so a hundred guesses sent at once get
no further than the first few) until it succeeds, which clears the account's count and takes the
attempt back from the address's. `ACCOUNT_LIMIT` failures of one account within `WINDOW`, or
`ADDRESS_LIMIT` from one client address, lock it for `LOCKOUT`; attempts refused while locked are
not counted, so a lock never lasts longer than `LOCKOUT` after the last counted failure.

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

from cloud import schema
from cloud.store import CloudStore
from dockside.errors import DocksideError

__all__ = [
    "ACCOUNT_LIMIT",
    "ADDRESS_LIMIT",
    "LOCKOUT",
    "WINDOW",
    "SignInAttempt",
    "SignInLimited",
    "begin_attempt",
]

ACCOUNT_LIMIT = 5
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

    def failed(self, store: CloudStore) -> None:
        """Keep the failure; lock the account or address that reached its limit."""
        table = schema.sign_in_failures
        with store.write() as tx:
            for key, limit in ((self.account_key, ACCOUNT_LIMIT), (self.address_key, ADDRESS_LIMIT)):
                tx.conn.execute(
                    update(table)
                    .where(table.c.key_hash == key, table.c.failures >= limit, table.c.locked_until.is_(None))
                    .values(locked_until=tx.now + LOCKOUT)
                )


def begin_attempt(
    store: CloudStore, email: str, address: str, *, now: datetime | None = None
) -> SignInAttempt:
    """Count a sign-in attempt for `email` from `address`, or refuse it (SignInLimited) while locked."""
    attempt = SignInAttempt(_key("account", email.strip().lower()), _key("address", address))
    limits = (
        (attempt.account_key, ACCOUNT_LIMIT, "account"),
        (attempt.address_key, ADDRESS_LIMIT, "address"),
    )
    with store.write() as tx:
        moment = now or tx.now
        _forget_old(tx.conn, tx.dialect, moment)
        waits: list[tuple[float, str]] = []
        for key, limit, what in limits:
            _ensure_row(tx.conn, tx.dialect, key, moment)
            row = tx.conn.execute(
                _locked(
                    select(schema.sign_in_failures).where(schema.sign_in_failures.c.key_hash == key),
                    tx.dialect,
                )
            ).one()
            if row.locked_until is not None and row.locked_until > moment:
                waits.append(((row.locked_until - moment).total_seconds(), what))
            elif (
                row.locked_until is None and row.failures >= limit and row.window_started_at + WINDOW > moment
            ):
                # The limit is taken by attempts still under way: wait for the window to pass.
                waits.append(((row.window_started_at + WINDOW - moment).total_seconds(), what))
        if waits:
            seconds, what = max(waits)
            raise SignInLimited(_refusal(what, seconds), max(1, math.ceil(seconds)))
        for key, _limit, _what in limits:
            _count(tx.conn, key, moment)
    return attempt


def _refusal(what: str, seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    whose = "for this account" if what == "account" else "from your network address"
    return (
        f"too many failed sign-ins {whose}: wait {minutes} minute{'s' if minutes > 1 else ''} and try "
        "again, and check the email, password and the current code from your authenticator app"
    )


def _locked(query: Any, dialect: str) -> Any:
    # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock.
    return query.with_for_update() if dialect == "postgresql" else query


def _ensure_row(conn: Connection, dialect: str, key: str, moment: datetime) -> None:
    values = {"key_hash": key, "failures": 0, "window_started_at": moment, "locked_until": None}
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(schema.sign_in_failures)
    conn.execute(statement.values(**values).on_conflict_do_nothing(index_elements=["key_hash"]))


def _count(conn: Connection, key: str, moment: datetime) -> None:
    table = schema.sign_in_failures
    row = conn.execute(select(table).where(table.c.key_hash == key)).one()
    if row.window_started_at + WINDOW <= moment or (
        row.locked_until is not None and row.locked_until <= moment
    ):
        # The window (or the lock) is over: this attempt starts a new count.
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
