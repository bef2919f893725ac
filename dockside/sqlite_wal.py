"""Turning a SQLite database to write-ahead logging even when others open it at the same moment.

`PRAGMA journal_mode=WAL` on a new database needs a moment alone with the file, and SQLite answers
"database is locked" at once instead of waiting out the busy timeout when another connection is
opening it too (three processes starting on one empty database: about 3 opens in 100 failed).
The switch is retried until the caller's busy timeout runs out, as the busy handler would have.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Protocol

__all__ = ["enter_wal"]

_RETRY_EVERY_S = 0.01
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class _Executes(Protocol):
    def execute(self, sql: str, /) -> object: ...


def enter_wal(connection: _Executes, busy_timeout_s: float) -> None:
    """Put the database in WAL mode, retrying while another connection holds it for its own switch."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in _BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_EVERY_S)
