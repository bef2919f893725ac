"""Secrets the cloud hands out (API tokens, enrollment tokens, agent credentials) and their hashes.

Only a SHA-256 hash is stored: the secrets carry 256 random bits, so a slow password hash would
add latency to every request without adding safety.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["API_TOKEN_PREFIX", "CREDENTIAL_PREFIX", "ENROLLMENT_PREFIX", "hash_secret", "new_secret"]

API_TOKEN_PREFIX = "dsk_"  # noqa: S105 - a visible prefix, not a secret
ENROLLMENT_PREFIX = "dse_"
CREDENTIAL_PREFIX = "dsa_"


def new_secret(prefix: str) -> str:
    """A fresh random secret; the prefix tells a person which kind of secret they hold."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
