"""Immutable numbered versions per tenant and name: the storage that templates and rulesets share.

A name's versions are numbered from 1. Two writers saving the same name at once cannot take the
same number (a unique key); the loser takes the next one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from cloud.storage.store import CloudStore
from dockside.errors import InputError, NotFound

__all__ = ["check_name", "insert_next_version", "version_row", "version_rows"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CREATE_ATTEMPTS = 5

T = TypeVar("T")


def check_name(name: str, kind: str, hint: str = "") -> None:
    """Refuse a name that is not 1 to 64 letters, digits, '.', '_' or '-' (`kind`: what it names)."""
    if not _NAME.match(name):
        raise InputError(
            f"{name[:80]!r} is not a {kind} name: use 1 to 64 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit{hint}",
            code=f"invalid_{kind}_name",
        )


def insert_next_version(
    store: CloudStore,
    table: Table,
    tenant_id: int,
    name: str,
    values: Mapping[str, Any],
    made: Callable[[Connection, int], T],
) -> T:
    """Store `values` as the next version of `name`; `made(conn, number)` reads it back in the same write."""
    for _attempt in range(_CREATE_ATTEMPTS):
        try:
            with store.write() as tx:
                top = tx.conn.execute(
                    select(func.max(table.c.version)).where(
                        table.c.tenant_id == tenant_id, table.c.name == name
                    )
                ).scalar()
                number = int(top or 0) + 1
                tx.conn.execute(
                    insert(table).values(
                        tenant_id=tenant_id, name=name, version=number, created_at=tx.now, **values
                    )
                )
                return made(tx.conn, number)
        except IntegrityError:
            continue  # another writer took this number (PostgreSQL): take the next one
    raise InputError(f"{name[:64]} is being saved by others right now: try again", code="busy")


def version_row(
    conn: Connection, table: Table, kind: str, tenant_id: int, name: str, number: int
) -> RowMapping:
    """The stored row of one version (NotFound naming the `kind` when it does not exist)."""
    row = (
        conn.execute(
            select(table).where(
                table.c.tenant_id == tenant_id, table.c.name == name, table.c.version == number
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"{kind} {name[:64]!r} has no version {number}: list its versions to pick one")
    return row


def version_rows(conn: Connection, table: Table, kind: str, tenant_id: int, name: str) -> list[RowMapping]:
    """Every version of a name, oldest first (NotFound telling how to create one when there is none)."""
    rows = (
        conn.execute(
            select(table)
            .where(table.c.tenant_id == tenant_id, table.c.name == name)
            .order_by(table.c.version)
        )
        .mappings()
        .all()
    )
    if not rows:
        raise NotFound(
            f"there is no {kind} {name[:64]!r}: "
            f"create a version with POST /api/v1/{kind}s/{name[:64]}/versions"
        )
    return list(rows)
