"""Failed console sign-ins are limited per address and slowed per account, in the database, without
ever keeping the account's owner out: a correct password and code from an address the owner
has signed in from get in while an attacker hammers the account."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from cloud.access import sign_in_limits, users
from cloud.access.principals import Role, Unauthenticated
from cloud.access.sign_in_limits import SignInLimited, account_delay
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from tests.cloud.conftest import RunningCloud

PASSWORD = "correct horse battery staple"
HERE = "192.0.2.10"

# The README's numbers ("Access", sign-in limiting), written here rather than imported from
# cloud.access.sign_in_limits, so a changed constant fails these tests instead of moving them.
ACCOUNT_FREE = 5  # failures within 15 minutes before an account waits
ACCOUNT_MAX_DELAY = timedelta(seconds=60)  # the longest an account waits
ADDRESS_LIMIT = 20  # failures within 15 minutes that lock an address out
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)


def _user(store: CloudStore, email: str = "ops@example.com") -> pyotp.TOTP:
    made = users.create_user(store, email=email, name="Ops", password=PASSWORD, role=Role.ADMIN)
    return pyotp.TOTP(made.totp_secret)


def _wrong_code(totp: pyotp.TOTP) -> str:
    # Never one of the codes the verifier accepts (now, and one step either side).
    accepted = {totp.at(utcnow() + timedelta(seconds=step)) for step in (-30, 0, 30)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def _post(client: httpx.Client, email: str, password: str, code: str) -> httpx.Response:
    return client.post("/api/v1/session", json={"email": email, "password": password, "totp": code})


def _fail(store: CloudStore, address: str, email: str = "ops@example.com") -> str:
    """One wrong sign-in; what happened to it."""
    try:
        users.sign_in(store, email=email, password="wrong password!", code="000000", address=address)
    except SignInLimited:
        return "limited"
    except Unauthenticated:
        return "verified and wrong"
    return "signed in"


def test_past_five_failures_an_unknown_address_waits_with_429_and_retry_after(cloud: RunningCloud) -> None:
    totp = _user(cloud.store)
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30) as client:
        # Right password, wrong TOTP: each counts like any other failure.
        for _ in range(ACCOUNT_FREE):
            assert _post(client, "ops@example.com", PASSWORD, _wrong_code(totp)).status_code == 401
        # This address never signed in to the account: it waits, even with the right answer.
        waiting = _post(client, "OPS@example.com", PASSWORD, totp.now())
    assert waiting.status_code == 429
    assert 1 <= int(waiting.headers["Retry-After"]) <= ACCOUNT_MAX_DELAY.total_seconds()
    error = waiting.json()["error"]
    assert error["code"] == "too_many_sign_in_attempts"
    assert "too many failed sign-ins for this account: wait 1 s" in error["message"]
    assert "authenticator app" in error["message"]


def test_the_delay_doubles_and_is_bounded() -> None:
    assert [account_delay(n).total_seconds() for n in range(ACCOUNT_FREE + 8)] == [
        *([0.0] * ACCOUNT_FREE),
        *(1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0),
    ]
    assert account_delay(10_000) == ACCOUNT_MAX_DELAY


def test_the_owner_gets_in_from_a_known_address_while_an_attacker_hammers(store: CloudStore) -> None:
    totp = _user(store)
    home = "198.51.100.20"
    assert users.sign_in(store, email="ops@example.com", password=PASSWORD, code=totp.now(), address=home)
    # An attacker from many addresses: a few guesses are checked, the rest wait and are refused.
    outcomes = [_fail(store, f"203.0.113.{n % 30}") for n in range(120)]
    assert outcomes.count("signed in") == 0
    assert outcomes.count("verified and wrong") <= ACCOUNT_FREE + 2
    assert outcomes.count("limited") >= 110
    # The owner, at home, with the right password and the next code, gets in at once...
    at = utcnow() + timedelta(seconds=30)
    session = users.sign_in(
        store, email="ops@example.com", password=PASSWORD, code=totp.at(at), address=home, now=at
    )
    assert session["token"].startswith(users.SESSION_PREFIX)
    # ...and a wrong password from home is still checked, never waved through.
    assert _fail(store, home) == "verified and wrong"


def test_a_waiting_account_refuses_unchecked_and_never_lengthens_the_wait(store: CloudStore) -> None:
    totp = _user(store)
    for n in range(ACCOUNT_FREE):
        assert _fail(store, f"203.0.113.{n}") == "verified and wrong"
    table = schema.sign_in_failures
    with store.read() as conn:
        before = conn.execute(select(table.c.failures, table.c.locked_until)).all()
    # The right password and code from a new address are refused unchecked during the wait...
    for _ in range(5):
        with pytest.raises(SignInLimited) as refused:
            users.sign_in(
                store, email="ops@example.com", password=PASSWORD, code=totp.now(), address="192.0.2.99"
            )
        assert refused.value.retry_after_s <= ACCOUNT_MAX_DELAY.total_seconds()
    # ...and counted nowhere: the wait ends when it would have.
    with store.read() as conn:
        after = conn.execute(select(table.c.failures, table.c.locked_until)).all()
    assert sorted(map(tuple, after), key=str) == sorted(map(tuple, before), key=str)
    # Once the wait is over, the next attempt is checked: the owner's right answer gets in.
    later = utcnow() + ACCOUNT_MAX_DELAY + timedelta(seconds=1)
    attempt = sign_in_limits.begin_attempt(store, "ops@example.com", "192.0.2.99", now=later)
    attempt.succeeded(store)


def test_a_successful_sign_in_clears_the_accounts_count(store: CloudStore) -> None:
    totp = _user(store)
    for round_ in range(3):
        for _ in range(ACCOUNT_FREE - 1):
            assert _fail(store, HERE) == "verified and wrong"
        # Each round 30 s later: a code is accepted only once, so each round needs a new one.
        at = utcnow() + timedelta(seconds=30 * round_)
        assert users.sign_in(
            store, email="ops@example.com", password=PASSWORD, code=totp.at(at), address=HERE, now=at
        )
    # Twelve failures in all, never five in a row: the account was never slowed down.
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


def test_replicas_count_together(database_url: str) -> None:
    first, second = CloudStore.open(database_url), CloudStore.open(database_url)
    try:
        totp = _user(first)
        for n in range(ACCOUNT_FREE):
            assert _fail((first, second)[n % 2], f"203.0.113.{n}") == "verified and wrong"
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


@pytest.mark.usefixtures("production_argon2")  # the guesses overlap while each is verified
def test_a_burst_of_guesses_at_once_gets_no_further_than_the_limit(store: CloudStore) -> None:
    _user(store)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda n: _fail(store, f"203.0.113.{n}"), range(40)))
    # Attempts count from the moment they begin; past the free ones, one at a time is checked.
    assert outcomes.count("verified and wrong") == ACCOUNT_FREE + 1
    assert outcomes.count("limited") == 40 - ACCOUNT_FREE - 1


def test_twenty_failures_from_an_address_lock_it_out_for_fifteen_minutes(store: CloudStore) -> None:
    start = utcnow()
    for n in range(ADDRESS_LIMIT):
        sign_in_limits.begin_attempt(store, f"guess{n}@example.com", HERE, now=start).failed(store)
    almost = start + LOCKOUT - timedelta(minutes=1)
    with pytest.raises(SignInLimited) as refused:
        sign_in_limits.begin_attempt(store, "other@example.com", HERE, now=almost)
    assert 60 <= refused.value.retry_after_s <= 120
    assert "wait 1 minute" in refused.value.message or "wait 2 minutes" in refused.value.message
    # Another address is not held back by it.
    sign_in_limits.begin_attempt(store, "other@example.com", "198.51.100.7", now=almost).succeeded(store)
    # Once the fifteen minutes are over, the address is checked again.
    over = utcnow() + LOCKOUT + timedelta(seconds=1)
    sign_in_limits.begin_attempt(store, "other@example.com", HERE, now=over).succeeded(store)


def test_an_address_counts_its_failures_within_fifteen_minutes_only(store: CloudStore) -> None:
    start = utcnow()
    for n in range(ADDRESS_LIMIT - 1):
        sign_in_limits.begin_attempt(store, f"guess{n}@example.com", HERE, now=start).failed(store)
    # The window is over: the next failure starts a new count instead of reaching the limit.
    later = start + WINDOW + timedelta(seconds=1)
    sign_in_limits.begin_attempt(store, "late@example.com", HERE, now=later).failed(store)
    sign_in_limits.begin_attempt(store, "later@example.com", HERE, now=later).succeeded(store)
    # Within the window, the same count reaches the limit and the next attempt waits.
    other = "198.51.100.30"
    for n in range(ADDRESS_LIMIT):
        sign_in_limits.begin_attempt(store, f"guess{n}@example.com", other, now=start).failed(store)
    with pytest.raises(SignInLimited):
        sign_in_limits.begin_attempt(store, "late@example.com", other, now=start + WINDOW / 2)
