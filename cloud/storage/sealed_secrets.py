"""Secrets the cloud must read back (TOTP seeds, webhook signing keys), sealed at rest.

Sealed with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`) under the key(s) in the
environment variable DOCKSIDE_SECRET_KEY: one or more Fernet keys, comma-separated, newest first.
The newest seals; every listed key opens, so a key is rotated by putting a new one in front,
running `dockside-cloud rotate-secrets` (re-seals every stored secret with the newest key) and
then dropping the old one.

A stored value reads `fernet:<token>`; a value without the prefix is a secret stored in clear by
an older release, still read as it is and sealed when next written or rotated.

Without DOCKSIDE_SECRET_KEY, `ensure_key` keeps a key file beside a SQLite database (the demo and
single-PC installs; the file is 0600) and refuses a PostgreSQL database, whose replicas must all
be given the same key. Keys and secrets are never logged.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import DocksideError

__all__ = [
    "KEY_ENV",
    "MissingSecretKey",
    "SecretKeyMismatch",
    "ensure_key",
    "is_sealed",
    "new_key",
    "reseal",
    "reseal_all",
    "seal",
    "unseal",
]

KEY_ENV = "DOCKSIDE_SECRET_KEY"
_PREFIX = "fernet:"


class MissingSecretKey(DocksideError):
    """No usable DOCKSIDE_SECRET_KEY: secrets at rest can be neither sealed nor opened."""

    code = "secret_key_missing"
    http_status = 500


class SecretKeyMismatch(DocksideError):
    """A stored secret was sealed with a key DOCKSIDE_SECRET_KEY no longer holds."""

    code = "secret_key_mismatch"
    http_status = 500


def new_key() -> str:
    """A fresh random key for DOCKSIDE_SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


@lru_cache(maxsize=4)
def _keyring_of(value: str) -> MultiFernet:
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise MissingSecretKey(f"{KEY_ENV} is empty: set it to a key from `dockside-cloud secret-key`")
    try:
        return MultiFernet([Fernet(key.encode("ascii")) for key in keys])
    except (ValueError, UnicodeEncodeError):
        # The message never repeats the value: it is a secret even when malformed.
        raise MissingSecretKey(
            f"{KEY_ENV} holds something that is not a Fernet key (32 url-safe base64 bytes, "
            "comma-separated when rotating): make one with `dockside-cloud secret-key`"
        ) from None


def _keyring() -> MultiFernet:
    value = os.environ.get(KEY_ENV, "")
    if not value.strip():
        raise MissingSecretKey(
            f"{KEY_ENV} is not set: TOTP and webhook secrets are sealed with it; "
            "make one with `dockside-cloud secret-key` and give every replica the same value"
        )
    return _keyring_of(value)


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (not a secret left in clear by an older release)."""
    return stored.startswith(_PREFIX)


def seal(plain: str) -> str:
    """The stored form of a secret, sealed with the newest key."""
    return _PREFIX + _keyring().encrypt(plain.encode("utf-8")).decode("ascii")


def unseal(stored: str) -> str:
    """The secret behind a stored value (a value in clear from an older release as it is)."""
    if not is_sealed(stored):
        return stored
    try:
        return _keyring().decrypt(stored[len(_PREFIX) :].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretKeyMismatch(
            f"a stored secret was sealed with a key that {KEY_ENV} no longer holds: "
            "put the old key back after the new one (comma-separated) and run `dockside-cloud rotate-secrets`"
        ) from None


def reseal(stored: str) -> str:
    """The stored value sealed with the newest key (a value in clear gets sealed)."""
    if not is_sealed(stored):
        return seal(stored)
    try:
        return _PREFIX + _keyring().rotate(stored[len(_PREFIX) :].encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretKeyMismatch(
            f"a stored secret was sealed with a key that {KEY_ENV} does not hold: "
            "list the old key after the new one (comma-separated) while rotating"
        ) from None


def _key_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database + ".secret-key")


def ensure_key(database_url: str) -> Path | None:
    """Make DOCKSIDE_SECRET_KEY usable for this process before the cloud touches a secret.

    Set: it is checked. Unset with a SQLite file: the key kept in `<database>.secret-key` (made
    0600 on first use) is put into this process's environment, and its path returned. Unset with
    PostgreSQL: MissingSecretKey, since each replica would otherwise make its own key.
    """
    if os.environ.get(KEY_ENV, "").strip():
        _keyring()
        return None
    path = _key_file(database_url)
    if path is None:
        raise MissingSecretKey(
            f"{KEY_ENV} is not set: a PostgreSQL cloud needs it (the same value on every replica); "
            "make one with `dockside-cloud secret-key`"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it a moment ago: use theirs
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(new_key() + "\n")
    os.environ[KEY_ENV] = path.read_text().strip()
    _keyring()
    return path


def reseal_all(store: CloudStore) -> int:
    """Seal every stored TOTP, webhook and carrier API secret with the newest key (clear ones too);
    returns how many rows were written."""
    written = 0
    for table, column in (
        (schema.users, "totp_secret"),
        (schema.webhook_subscriptions, "secret"),
        (schema.carriers, "secret"),  # NULL for carriers that have no API key
    ):
        with store.write() as tx:
            query = select(table.c.id, table.c[column]).where(table.c[column].is_not(None))
            rows = tx.conn.execute(query).all()
            for row in rows:
                stored = row[1]
                resealed = reseal(stored)
                if resealed != stored:
                    tx.conn.execute(update(table).where(table.c.id == row.id).values({column: resealed}))
                    written += 1
    return written
