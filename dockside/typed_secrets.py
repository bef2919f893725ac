"""Secrets people type: console passwords and packer PINs, kept only as argon2id hashes.

One hasher for the cloud (users, packers) and the agent (PIN sign-in at the station), so a PIN
hashed in the cloud verifies at the edge. `HASHER` has argon2-cffi's defaults, RFC 9106's
low-memory choice (argon2id, 3 passes, 64 MiB, 4 lanes): about a tenth of a second per hash on
purpose. A hash keeps its own parameters, so a stored hash verifies whatever `HASHER` is now.
The suite swaps `HASHER` for argon2's cheapest parameters in its own process (tests/conftest.py,
as Django's documentation advises for tests); a test pins these production parameters.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["HASHER", "hash_typed", "matches", "unmatchable_hash"]

HASHER = PasswordHasher()


def hash_typed(secret: str) -> str:
    """The argon2id hash to store for `secret`, salted afresh."""
    return HASHER.hash(secret)


def matches(stored: str, secret: str) -> bool:
    """Whether `secret` is the one `stored` was made from; False for a hash that cannot be read."""
    try:
        return HASHER.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def unmatchable_hash() -> str:
    """A hash, made with today's hasher, of a random secret nobody knows: verified when an account
    is unknown, so an unknown email costs as long as a wrong password."""
    return _unmatchable(HASHER)


@functools.cache
def _unmatchable(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(32))
