"""Alembic's entry point for the cloud: runs migrations on the connection `upgrade` hands over.

There is no alembic.ini: `cloud.storage.migrations.upgrade` builds the config in code and passes an open
connection (already inside the caller's transaction), so migrating is part of opening the store.
"""

from __future__ import annotations

from alembic import context

from cloud.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
