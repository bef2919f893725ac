"""The agent's SQLite store (`<data dir>/agent.db`): the synced cache, jobs and the outbox.

One connection, opened in autocommit mode so nothing opens a transaction behind our back; every
multi-statement effect goes through `Store.atomic()`, which nests with savepoints. WAL with
synchronous=NORMAL: a commit costs tens of microseconds and survives a process crash (a power
cut may lose the last commits, never corrupt the file).

The agent uses the store from one thread (its event loop) and never awaits inside `atomic()`,
so transactions of the pack path, the watch loop and the outbox sender never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from dockside.errors import DocksideError
from dockside.secret_files import SQLITE_COMPANIONS, private_file
from dockside.sqlite_wal import enter_wal
from edge_agent.store.migrations import MIGRATIONS, MigrationRegistry

__all__ = ["DB_FILENAME", "Checkpointer", "Store", "StoreError", "now_ms"]

log = logging.getLogger(__name__)

DB_FILENAME = "agent.db"
# How long a writer waits for another (the agent and a `dockside-agent status` beside it).
_BUSY_TIMEOUT_S = 10.0


class StoreError(DocksideError):
    """The data dir cannot be used (newer schema, unreadable file); a person must act."""

    code = "store_unusable"
    http_status = 500


def now_ms() -> int:
    """The agent clock in Unix milliseconds (what events and jobs record)."""
    return time.time_ns() // 1_000_000


class Store:
    """The open agent database; `Store.open(data_dir)` creates and migrates it as needed."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(cls, data_dir: Path, *, migrations: MigrationRegistry = MIGRATIONS) -> Store:
        """Open (creating if needed) `data_dir/agent.db` and bring its schema up to date."""
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = data_dir / DB_FILENAME
        return cls.connect(path, migrations=migrations)

    @classmethod
    def connect(cls, path: Path | str, *, migrations: MigrationRegistry = MIGRATIONS) -> Store:
        """Open the database file at `path` (or ":memory:") and migrate it."""
        if str(path) != ":memory:":
            # The database holds the agent's credential: 0600 from the start, -wal and -shm alike.
            private_file(Path(path), companions=SQLITE_COMPANIONS)
        try:
            conn = sqlite3.connect(
                str(path),
                isolation_level=None,  # autocommit: transactions only through atomic()
                check_same_thread=False,  # created by the CLI thread, used by the event loop
                timeout=_BUSY_TIMEOUT_S,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the agent database {path} ({exc}): check the data dir's permissions"
            ) from exc
        store = cls(conn, None if str(path) == ":memory:" else Path(path))
        try:
            store._configure()
            store.migrate(migrations)
        except BaseException:
            conn.close()
            raise
        return store

    def _configure(self) -> None:
        try:
            enter_wal(self.conn, _BUSY_TIMEOUT_S)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            # A WAL reset larger than this is truncated back, so a burst does not keep its disk.
            self.conn.execute("PRAGMA journal_size_limit=67108864")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is not a usable agent database ({exc}): move it away and enroll again"
            ) from exc

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def atomic(self) -> Iterator[Store]:
        """One transaction (or a savepoint inside one): all of the block's writes, or none.

        Never `await` inside: the connection is shared by everything on the event loop.
        """
        with self.db.atomic():
            yield self

    def checkpoint_off_the_loop(self) -> Checkpointer | None:
        """Hand WAL checkpoints to a `Checkpointer` (None for an in-memory store).

        SQLite normally checkpoints inside whichever commit crosses 1000 WAL pages, and that
        commit then pays milliseconds of copying and fsync: too much for the pack path.
        """
        if self.path is None:
            return None
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        return Checkpointer(self.path)

    # -- schema ------------------------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at_ms INTEGER NOT NULL)"
        )
        return [row[0] for row in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    def migrate(self, migrations: MigrationRegistry = MIGRATIONS) -> list[str]:
        """Apply the steps not yet recorded, each with its record; returns their names.

        Refuses a store that a newer agent has migrated past what this code knows, since this
        code would misread its tables.
        """
        applied = self.applied_migrations()
        known = set(migrations.names())
        unknown = [name for name in applied if name not in known]
        if unknown:
            where = self.path or "the agent database"
            raise StoreError(
                f"{where} was written by a newer dockside-agent (schema step {unknown[0]} is unknown "
                "to this version): install that newer version again, or use another --data-dir",
                code="store_too_new",
            )
        done: list[str] = []
        for step in migrations:
            if step.name in applied:
                continue
            with self.atomic():
                step.apply(self.db)
                self.conn.execute(
                    "INSERT INTO _migrations (name, applied_at_ms) VALUES (?, ?)", (step.name, now_ms())
                )
            done.append(step.name)
        return done

    # -- small shared state ------------------------------------------------------------------

    def revision(self) -> int:
        """The last cloud revision applied to the cache."""
        row = self.conn.execute("SELECT revision FROM sync_state WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def set_revision(self, revision: int) -> None:
        """Record `revision` as applied; call it inside the transaction that applied it."""
        self.conn.execute("UPDATE sync_state SET revision = ? WHERE id = 1", (revision,))

    def count(self, table: str) -> int:
        return int(self.db[table].count)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as dicts, for the slow paths (status, tests, the CLI)."""
        return list(self.db.query(sql, params))


class Checkpointer:
    """Copies the WAL into the database file from a worker thread on its own connection.

    PASSIVE checkpoints never block the writer; they run every `every_s` seconds while the
    agent runs, so the WAL stays small without any commit of the pack path paying for it.
    """

    def __init__(self, path: Path, *, every_s: float = 2.0) -> None:
        self.path = path
        self.every_s = every_s
        self.checkpoints = 0

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, WAL frames, frames checkpointed), as SQLite reports."""
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        return int(busy), int(frames), int(done)

    async def run(self) -> None:
        """Checkpoint periodically until cancelled."""
        conn = await asyncio.to_thread(
            sqlite3.connect,
            str(self.path),
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_S,
        )
        try:
            while True:
                await asyncio.sleep(self.every_s)
                try:
                    await asyncio.to_thread(self.checkpoint, conn)
                except sqlite3.Error as exc:  # busy or locked: the next round tries again
                    log.warning("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()
