"""The migrations build exactly the schema `cloud/storage/schema.py` declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from cloud.storage import migrations, schema
from cloud.storage.store import CloudStore, _engine_url


def _migrated_engine(database_url: str) -> Engine:
    engine = create_engine(_engine_url(database_url))
    with engine.connect() as conn, conn.begin():
        migrations.upgrade(conn)
    return engine


def test_migrating_an_empty_database_matches_schema_py(database_url: str) -> None:
    engine = _migrated_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            drift = compare_metadata(context, schema.metadata)
            assert context.get_current_revision() == migrations.head()
        # A table in schema.py without a migration shows up here as ('add_table', ...).
        assert drift == [], f"schema.py and cloud/migrations differ: write a migration for {drift}"
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_keeps_data(database_url: str) -> None:
    store = CloudStore.open(database_url)
    tenant = store.tenant_id()
    store.close()
    again = CloudStore.open(database_url)
    try:
        assert again.tenant_id() == tenant
        with again.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        again.close()


def test_a_database_made_before_migrations_is_stamped_not_recreated(database_url: str) -> None:
    engine = create_engine(_engine_url(database_url))
    try:
        with engine.begin() as conn:
            schema.metadata.create_all(conn)
        store = CloudStore.open(database_url)
        store.close()
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == migrations.head()
            assert "changes" in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_two_processes_opening_an_empty_database_at_once_both_succeed(database_url: str) -> None:
    errors: list[BaseException] = []
    # Each opener waits for the others, so all three connect to the empty database together.
    together = threading.Barrier(3, timeout=60)

    def open_store() -> None:
        try:
            together.wait()
            CloudStore.open(database_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # A thread still opening after a minute is a hang, not a success.
    assert [thread.is_alive() for thread in threads] == [False, False, False]
    assert errors == []
    store = CloudStore.open(database_url)
    try:
        with store.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM sync_clock")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 1
    finally:
        store.close()
