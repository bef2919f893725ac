"""The cloud schema's history (Alembic), applied when `serve` or `init-db` opens the database.

    with engine.connect() as conn, conn.begin():
        upgrade(conn)          # to the newest revision, inside the caller's transaction

A table added to `cloud/storage/schema.py` needs a migration here too
(`tests/cloud/storage/test_migrations.py` compares the migrated database with the metadata and
fails on drift). Write one by hand in `versions/` (next number, `down_revision` = the previous
one); autogenerate can draft it:
`dockside-cloud draft-migration "what changed"`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

__all__ = ["BASELINE", "alembic_config", "head", "upgrade"]

BASELINE = "0001_baseline"
_HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for the cloud migrations, bound to `connection` when given."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest migration's revision id."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(connection: Connection) -> None:
    """Bring the database on `connection` to the newest revision; a no-op when it is there.

    A database created before migrations existed (tables, no alembic_version) is stamped at the
    baseline first, so its tables are not created twice.
    """
    current = MigrationContext.configure(connection).get_current_revision()
    if current == head():
        return
    config = alembic_config(connection)
    if current is None and inspect(connection).has_table("sync_clock"):
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
