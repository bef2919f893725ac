"""Secret files are 0600 from the moment they exist: the helper, the cloud's and the agent's databases."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cloud.storage.store import CloudStore
from dockside.secret_files import SQLITE_COMPANIONS, private_file, write_private
from edge_agent.store.database import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022), under which a plain open() makes a 0644 file."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_file_is_made_0600(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert _mode(plain) == 0o644  # what the default would have been
    private_file(tmp_path / "secret")
    assert _mode(tmp_path / "secret") == 0o600
    assert (tmp_path / "secret").read_bytes() == b""


def test_an_older_wider_file_and_its_companions_are_narrowed_and_kept(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite"
    database.write_text("content")
    (tmp_path / "db.sqlite-wal").write_text("wal")
    os.chmod(database, 0o644)
    private_file(database, companions=SQLITE_COMPANIONS)
    assert _mode(database) == 0o600
    assert _mode(tmp_path / "db.sqlite-wal") == 0o600
    assert database.read_text() == "content"
    assert not (tmp_path / "db.sqlite-shm").exists()


def test_write_private_replaces_content_with_a_0600_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "admin-token"
    write_private(target, "first\n")
    write_private(target, b"second\n")
    assert target.read_text() == "second\n"
    assert _mode(target) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["admin-token"]


def test_the_clouds_sqlite_database_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    store = CloudStore.open(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            names = {p.name for p in tmp_path.iterdir()}
            assert {"cloud.db", "cloud.db-wal", "cloud.db-shm"} <= names
            assert {name: _mode(tmp_path / name) for name in names} == dict.fromkeys(names, 0o600)
    finally:
        store.close()


def test_init_db_from_the_command_line_makes_a_0600_database(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    subprocess.run(
        [sys.executable, "-m", "cloud.commands.cli", "init-db", "--database-url", f"sqlite:///{database}"],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert _mode(database) == 0o600


def test_the_agents_database_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "data")
    try:
        store.conn.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        store.conn.execute("INSERT INTO probe VALUES (1)")
        files = sorted((tmp_path / "data").iterdir())
        assert {p.name for p in files} >= {"agent.db", "agent.db-wal", "agent.db-shm"}
        assert {p.name: _mode(p) for p in files if p.name.startswith("agent.db")} == {
            p.name: 0o600 for p in files if p.name.startswith("agent.db")
        }
    finally:
        store.close()
