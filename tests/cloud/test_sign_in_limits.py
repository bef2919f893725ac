"""Failed console sign-ins are limited per account and per address, in the database, for a bounded time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from cloud import schema, sign_in_limits, users
from cloud.access import Role, Unauthenticated
from cloud.sign_in_limits import ACCOUNT_LIMIT, ADDRESS_LIMIT, LOCKOUT, SignInLimited
from cloud.store import CloudStore, utcnow
from tests.cloud.conftest import RunningCloud

PASSWORD = "correct horse battery staple"
HERE = "192.0.2.10"


def _user(store: CloudStore, email: str = "ops@example.com") -> pyotp.TOTP:
    made = users.create_user(store, email=email, name="Ops", password=PASSWORD, role=Role.ADMIN)
    return pyotp.TOTP(made.totp_secret)


def _wrong_code(totp: pyotp.TOTP) -> str:
    # Never one of the codes the verifier accepts (now, and one step either side).
    accepted = {totp.at(utcnow() + timedelta(seconds=step)) for step in (-30, 0, 30)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def _post(client: httpx.Client, email: str, password: str, code: str) -> httpx.Response:
    return client.post("/api/v1/session", json={"email": email, "password": password, "totp": code})


def test_five_wrong_codes_lock_the_account_with_429_and_retry_after(cloud: RunningCloud) -> None:
    totp = _user(cloud.store)
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30) as client:
        # Right password, wrong TOTP: each counts like any other failure.
        for _ in range(ACCOUNT_LIMIT):
            assert _post(client, "ops@example.com", PASSWORD, _wrong_code(totp)).status_code == 401
        locked = _post(client, "OPS@example.com", PASSWORD, totp.now())  # even the right answer waits
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= LOCKOUT.total_seconds()
    error = locked.json()["error"]
    assert error["code"] == "too_many_sign_in_attempts"
    assert "too many failed sign-ins for this account: wait 15 minutes" in error["message"]
    assert "authenticator app" in error["message"]


def test_a_successful_sign_in_clears_the_accounts_count(store: CloudStore) -> None:
    totp = _user(store)
    for round_ in range(3):
        for _ in range(ACCOUNT_LIMIT - 1):
            with pytest.raises(Unauthenticated):
                users.sign_in(
                    store, email="ops@example.com", password="wrong!", code=totp.now(), address=HERE
                )
        # Each round 30 s later: a code is accepted only once, so each round needs a new one.
        at = utcnow() + timedelta(seconds=30 * round_)
        assert users.sign_in(
            store, email="ops@example.com", password=PASSWORD, code=totp.at(at), address=HERE, now=at
        )
    # Twelve failures in all, never five in a row: the account was never locked.
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(schema.sign_in_failures)).scalar_one() == 1


def test_one_address_failing_on_many_accounts_is_limited_but_others_are_not(store: CloudStore) -> None:
    totp = _user(store, "real@example.com")
    for n in range(ADDRESS_LIMIT):
        with pytest.raises(Unauthenticated):
            users.sign_in(
                store, email=f"guess{n}@example.com", password="x" * 12, code="123456", address=HERE
            )
    with pytest.raises(SignInLimited) as refused:
        users.sign_in(store, email="real@example.com", password=PASSWORD, code=totp.now(), address=HERE)
    assert "from your network address" in refused.value.message
    # The same account from another address signs in: the sprayer's address locked only itself.
    assert users.sign_in(
        store, email="real@example.com", password=PASSWORD, code=totp.now(), address="198.51.100.7"
    )


def test_a_lockout_is_bounded_and_refused_attempts_do_not_extend_it(store: CloudStore) -> None:
    _user(store)
    for _ in range(ACCOUNT_LIMIT):
        with pytest.raises(Unauthenticated):
            users.sign_in(store, email="ops@example.com", password="wrong!", code="000000", address=HERE)
    start = utcnow()
    # Hammering during the lock is refused and never counted...
    for minutes in (1, 5, 10, 14):
        with pytest.raises(SignInLimited) as refused:
            sign_in_limits.begin_attempt(
                store, "ops@example.com", HERE, now=start + timedelta(minutes=minutes)
            )
        assert refused.value.retry_after_s <= (LOCKOUT - timedelta(minutes=minutes)).total_seconds() + 5
    # ...so the lock ends LOCKOUT after the last counted failure, and a new count starts.
    after = start + LOCKOUT + timedelta(seconds=5)
    attempt = sign_in_limits.begin_attempt(store, "ops@example.com", HERE, now=after)
    attempt.succeeded(store)
    with store.read() as conn:
        rows = conn.execute(select(schema.sign_in_failures)).all()
    # The account's count is gone; the address's window was over, so it restarted and took the
    # successful attempt back.
    assert [row.failures for row in rows] == [0]


def test_replicas_count_together(database_url: str) -> None:
    first, second = CloudStore.open(database_url), CloudStore.open(database_url)
    try:
        totp = _user(first)
        for n in range(ACCOUNT_LIMIT):
            replica = (first, second)[n % 2]
            with pytest.raises(Unauthenticated):
                users.sign_in(
                    replica,
                    email="ops@example.com",
                    password="wrong!",
                    code="000000",
                    address=f"203.0.113.{n}",
                )
        for replica in (first, second):
            with pytest.raises(SignInLimited):
                users.sign_in(
                    replica,
                    email="ops@example.com",
                    password=PASSWORD,
                    code=totp.now(),
                    address="203.0.113.99",
                )
    finally:
        first.close()
        second.close()


def test_a_burst_of_guesses_at_once_gets_no_further_than_the_limit(store: CloudStore) -> None:
    _user(store)

    def guess(n: int) -> str:
        try:
            users.sign_in(
                store,
                email="ops@example.com",
                password=f"guess number {n}",
                code="000000",
                address=f"203.0.113.{n}",
            )
        except SignInLimited:
            return "limited"
        except Unauthenticated:
            return "verified and wrong"
        return "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(guess, range(40)))
    # Attempts count from the moment they begin, so at most ACCOUNT_LIMIT were ever checked.
    assert outcomes.count("verified and wrong") == ACCOUNT_LIMIT
    assert outcomes.count("limited") == 40 - ACCOUNT_LIMIT
