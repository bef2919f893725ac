"""The agent store: one nesting atomic(), the migration registry, refusing a newer store."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_agent.printing.jobs import Job, JobDecision, Jobs, JobStatus
from edge_agent.store.database import DB_FILENAME, Store, StoreError
from edge_agent.store.migrations import MIGRATIONS, MigrationRegistry
from edge_agent.sync.identity import load_identity, save_identity


def _rows(store: Store) -> list[str]:
    return [row["name"] for row in store.query("SELECT name FROM rulesets ORDER BY name")]


def _put(store: Store, name: str) -> None:
    store.conn.execute("INSERT INTO rulesets (name, body, revision) VALUES (?, '{}', 1)", (name,))


def test_a_fresh_store_is_wal_with_normal_sync_and_fully_migrated(store: Store, data_dir: Path) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.applied_migrations() == MIGRATIONS.names()
    assert store.revision() == 0
    assert {"identity", "sync_state", "orders", "jobs", "outbox", "dead_letters"} <= set(
        store.db.table_names()
    )
    if os.name == "posix":
        assert (data_dir / DB_FILENAME).stat().st_mode & 0o777 == 0o600


def test_atomic_commits_the_whole_block(store: Store) -> None:
    with store.atomic():
        _put(store, "a")
        _put(store, "b")
    assert _rows(store) == ["a", "b"]


def _put_then_fail(store: Store, *names: str) -> None:
    with store.atomic():
        for name in names:
            _put(store, name)
        raise RuntimeError("the block fails")


def test_atomic_rolls_back_the_whole_block_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        _put_then_fail(store, "a", "b")
    assert _rows(store) == []
    assert not store.conn.in_transaction


def test_a_nested_atomic_is_a_savepoint_that_rolls_back_alone(store: Store) -> None:
    with store.atomic():
        _put(store, "outer")
        with pytest.raises(RuntimeError):
            _put_then_fail(store, "inner")
        _put(store, "after")
    assert _rows(store) == ["after", "outer"]


def test_an_outer_rollback_undoes_a_committed_inner_block(store: Store) -> None:
    def inner_commits_outer_fails() -> None:
        with store.atomic():
            with store.atomic():
                _put(store, "inner")
            assert _rows(store) == ["inner"]
            raise RuntimeError("outer fails")

    with pytest.raises(RuntimeError):
        inner_commits_outer_fails()
    assert _rows(store) == []


def test_reopening_applies_no_migration_twice(data_dir: Path) -> None:
    Store.open(data_dir).close()
    again = Store.open(data_dir)
    try:
        assert again.migrate() == []
        count = again.conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
        assert count == len(MIGRATIONS)
    finally:
        again.close()


def _registry_with(extra: Any) -> MigrationRegistry:
    registry = MigrationRegistry()
    for step in MIGRATIONS:
        registry.register(step.apply)
    registry.register(extra)
    return registry


def m9000_add_notes(db: Any) -> None:
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")


def m9001_half_done(db: Any) -> None:
    db.execute("CREATE TABLE half (id INTEGER PRIMARY KEY)")
    raise RuntimeError("the second half of this step fails")


def test_a_new_migration_is_applied_once_with_its_record(data_dir: Path) -> None:
    Store.open(data_dir).close()
    store = Store.open(data_dir, migrations=_registry_with(m9000_add_notes))
    try:
        assert "notes" in store.db.table_names()
        assert store.applied_migrations()[-1] == "m9000_add_notes"
        assert store.migrate(_registry_with(m9000_add_notes)) == []
    finally:
        store.close()


def test_a_failing_migration_leaves_neither_its_effect_nor_its_record(data_dir: Path) -> None:
    Store.open(data_dir).close()
    with pytest.raises(RuntimeError, match="second half"):
        Store.open(data_dir, migrations=_registry_with(m9001_half_done))
    store = Store.open(data_dir)
    try:
        assert "half" not in store.db.table_names()
        assert "m9001_half_done" not in store.applied_migrations()
    finally:
        store.close()


def test_a_store_from_a_newer_agent_is_refused_clearly(data_dir: Path) -> None:
    Store.open(data_dir, migrations=_registry_with(m9000_add_notes)).close()

    with pytest.raises(StoreError) as refused:
        Store.open(data_dir)

    assert refused.value.code == "store_too_new"
    assert "newer dockside-agent" in refused.value.message
    assert "m9000_add_notes" in refused.value.message


def test_registering_a_migration_name_twice_is_a_bug() -> None:
    registry = MigrationRegistry()
    registry.register(m9000_add_notes)
    with pytest.raises(ValueError, match="twice"):
        registry.register(m9000_add_notes)


def test_a_file_that_is_not_a_database_is_refused_clearly(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as refused:
        Store.open(data_dir)
    assert "not a usable agent database" in refused.value.message


def test_the_identity_keeps_its_credential_out_of_its_repr(store: Store) -> None:
    save_identity(store, agent_id="a-1", credential="s3cret-value", warehouse="WH1", tenant="t", cloud="h:1")
    identity = load_identity(store)
    assert identity is not None
    assert identity.credential == "s3cret-value"
    assert "s3cret" not in repr(identity)


def test_checkpoints_move_off_the_commit_path(store: Store) -> None:
    checkpointer = store.checkpoint_off_the_loop()
    assert checkpointer is not None
    assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for n in range(2000):  # more than the 1000 pages at which a commit would checkpoint itself
        _put(store, f"r{n:05d}-" + "x" * 3000)
    other = sqlite3.connect(str(checkpointer.path), isolation_level=None)
    try:
        busy, frames, done = checkpointer.checkpoint(other)
    finally:
        other.close()
    assert busy == 0
    assert frames > 1000
    assert done == frames


@pytest.mark.parametrize(
    ("decision", "stored"),
    [
        (
            JobDecision("UPS", "ground", "shipping-4x6", 3, "label"),
            '{"carrier":"UPS","service":"ground","template":"shipping-4x6","template_version":3,"printer_role":"label"}',
        ),
        (
            JobDecision("UPS", "", "shipping-4x6", 3, "label", weight_source="expected", wave_id=7),
            '{"carrier":"UPS","service":"","template":"shipping-4x6","template_version":3,"printer_role":"label",'
            '"weight_source":"expected","wave_id":7}',
        ),
        (
            JobDecision("DOCKSIDE", "express", "shipping-4x6"),
            '{"carrier":"DOCKSIDE","service":"express","template":"shipping-4x6"}',
        ),
    ],
)
def test_a_jobs_decision_is_stored_as_the_same_json_and_read_back_whole(
    store: Store, decision: JobDecision, stored: str
) -> None:
    job = Job(
        "J1", "r1", "A-1", "S1", "S1-label", JobStatus.PRINTED, 1200, decision, 1, 1, None, "", b"^XA^XZ"
    )
    with store.atomic():
        Jobs(store).insert(job)
    assert store.conn.execute("SELECT decision FROM jobs").fetchone()[0] == stored
    assert Jobs(store).get("J1") == job
