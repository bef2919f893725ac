"""Entering WAL mode while another connection holds the new database for a moment."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from dockside.sqlite_wal import enter_wal


def _held(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    return holder


def test_the_switch_waits_for_a_connection_that_holds_the_database(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    holder = _held(path)
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError):
            opener.execute("PRAGMA journal_mode=WAL")  # what SQLite does on its own: no wait
        release = threading.Timer(0.2, holder.execute, args=("COMMIT",))
        release.start()
        enter_wal(opener, busy_timeout_s=10)
        release.join()
        assert opener.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        opener.close()
        holder.close()


def test_a_database_held_past_the_timeout_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    holder = _held(path)
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            enter_wal(opener, busy_timeout_s=0.05)
    finally:
        opener.close()
        holder.close()


def test_an_error_other_than_busy_is_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not SQLite" * 100)
    opener = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            enter_wal(opener, busy_timeout_s=10)
    finally:
        opener.close()


def test_three_openers_of_one_empty_database_all_get_wal(tmp_path: Path) -> None:
    # Without the retry about 8 rounds in 100 fail here, so 60 rounds catch a regression.
    for round_number in range(60):
        path = tmp_path / f"round-{round_number}.db"
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def open_it(path: Path = path, start: threading.Barrier = start, errors: list = errors) -> None:
            connection = sqlite3.connect(path, isolation_level=None, timeout=10)
            try:
                start.wait()
                enter_wal(connection, busy_timeout_s=10)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
