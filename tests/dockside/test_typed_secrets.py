"""Passwords and PINs: the shipped hasher's parameters, and what matches (dockside/typed_secrets.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dockside.typed_secrets import hash_typed, matches, unmatchable_hash

# argon2id, v1.3, 64 MiB, 3 passes, 4 lanes: RFC 9106's low-memory choice, argon2-cffi's default.
PRODUCTION_PREFIX = "$argon2id$v=19$m=65536,t=3,p=4$"


def test_a_cloud_or_agent_process_hashes_with_the_production_parameters() -> None:
    """Outside the suite's own processes (which swap in cheap parameters, tests/conftest.py)."""
    printed = subprocess.run(
        [sys.executable, "-c", "from dockside.typed_secrets import hash_typed; print(hash_typed('4821'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert printed.startswith(PRODUCTION_PREFIX), printed
    assert matches(printed, "4821")  # a hash carries its parameters: it verifies here too
    assert not matches(printed, "4822")


def test_each_hash_is_salted_afresh_and_matches_only_its_secret() -> None:
    first, second = hash_typed("correct horse"), hash_typed("correct horse")
    assert first != second
    assert matches(first, "correct horse")
    assert matches(second, "correct horse")
    assert not matches(first, "correct hors")
    assert not matches(first, "")


NOT_ARGON2 = {
    "empty": "",
    "the PIN itself": "4821",
    "a cut-off hash": "$argon2id$",
    "salt and hash too short": PRODUCTION_PREFIX + "AAAA$BBBB",
    "100,000 characters": "x" * 100_000,
    "bcrypt": "$2b$12$" + "a" * 53,
}


@pytest.mark.parametrize("stored", NOT_ARGON2.values(), ids=NOT_ARGON2.keys())
def test_a_stored_value_that_is_not_a_readable_argon2_hash_matches_nothing(stored: str) -> None:
    assert not matches(stored, "4821")


def test_the_unknown_account_hash_matches_nothing_and_is_made_once() -> None:
    assert unmatchable_hash() == unmatchable_hash()
    for guess in ("", "4821", "dockside-no-such-user", "dockside-no-such-account", "password"):
        assert not matches(unmatchable_hash(), guess)
