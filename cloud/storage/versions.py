"""Immutable numbered versions per tenant and name: the storage that templates and rulesets share.

A name's versions are numbered from 1. Two writers saving the same name at once cannot take the
same number (a unique key); the loser takes the next one. `VersionedNames` is one kind of them
(templates, rulesets) with its table and API body:

    RULESETS = VersionedNames(schema.ruleset_versions, "ruleset", _body)
    RULESETS.create(store, tenant_id, "default", {"body": text, ...})   # the next number
    RULESETS.version(store, tenant_id, "default", 3)                    # its API body
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping, Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from cloud.storage.store import CloudStore
from dockside.errors import InputError, NotFound

__all__ = ["VersionedNames", "check_name", "insert_next_version", "version_row", "version_rows"]

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


@dataclass(frozen=True)
class VersionedNames:
    """One kind of immutable numbered versions: its table, what it is called, and its API body.

    Every read and write checks the name first, so a bad name is refused the same way everywhere.
    """

    table: Table
    kind: str  # "template", "ruleset": used in names of errors and in their messages
    body: Callable[[RowMapping], dict[str, Any]]
    name_hint: str = ""  # said after the naming rule when a name is refused

    def check_name(self, name: str) -> None:
        """Refuse a name that is not 1 to 64 letters, digits, '.', '_' or '-'."""
        check_name(name, self.kind, self.name_hint)

    def row(self, conn: Connection, tenant_id: int, name: str, number: int) -> RowMapping:
        """The stored row of one version (NotFound when it does not exist)."""
        return version_row(conn, self.table, self.kind, tenant_id, name, number)

    def create(
        self, store: CloudStore, tenant_id: int, name: str, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Store `values` as the next version of `name` and return its body."""
        self.check_name(name)
        return insert_next_version(
            store,
            self.table,
            tenant_id,
            name,
            values,
            lambda conn, number: self.body(self.row(conn, tenant_id, name, number)),
        )

    def version(self, store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
        """The body of one version."""
        self.check_name(name)
        with store.read() as conn:
            return self.body(self.row(conn, tenant_id, name, number))

    def versions(self, store: CloudStore, tenant_id: int, name: str) -> list[dict[str, Any]]:
        """The bodies of every version of a name, oldest first (NotFound when it has none)."""
        self.check_name(name)
        with store.read() as conn:
            rows = version_rows(conn, self.table, self.kind, tenant_id, name)
        return [self.body(row) for row in rows]
