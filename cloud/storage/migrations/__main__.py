"""`python -m cloud.storage.migrations draft "what changed"`: draft a migration with autogenerate.

A developer's tool: it compares schema.py with a database at head and writes what the database
lacks into `versions/` for a person to read and fix before committing.
"""

from __future__ import annotations

import sys

from alembic import command

from cloud.storage.migrations import alembic_config
from cloud.storage.store import CloudStore, database_url_from_env


def _draft(message: str) -> None:  # pragma: no cover - a developer's tool
    """Write a draft migration for what schema.py has and the database (at head) lacks."""
    store = CloudStore.open(database_url_from_env())
    with store.engine.connect() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
    store.close()


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3 or sys.argv[1] != "draft":
        sys.exit('usage: python -m cloud.storage.migrations draft "what changed"')
    _draft(sys.argv[2])
