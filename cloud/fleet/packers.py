"""The packers of a warehouse: who may sign in at its stations, with a badge or a PIN.

    POST  /api/v1/warehouses/{wh}/packers              {"name", "badge"?, "pin"?}
    GET   /api/v1/warehouses/{wh}/packers
    PATCH /api/v1/warehouses/{wh}/packers/{packer_id}  {"name"?, "badge"?, "pin"?, "disabled"?}

A badge is the code printed on the packer's badge, unique in its warehouse. A PIN is 4 to 8 digits,
stored only as an argon2 hash (the hashing console users' passwords get), and unique in the
warehouse too: a packer signing in with a PIN alone is found by it. The API never shows a PIN or
its hash, only `has_pin`.

Every write that changes what an agent needs appends a PACKER change for the warehouse: the body
is {"id", "name", "badge", "pin_hash"}; a disabled packer is a deletion, so its agents forget it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Connection, Row, insert, select, update

from cloud.fleet.warehouses import warehouse_id
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, WriteTransaction, dumps
from dockside.errors import Conflict, InputError, NotFound
from dockside.sync import ChangeKind
from dockside.typed_secrets import hash_typed, matches

__all__ = [
    "PackerIn",
    "PackerPatch",
    "create_packer",
    "get_packer",
    "list_packers",
    "packer_sync_bodies",
    "update_packer",
]

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
PackerName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE)]
Badge = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PackerIn(_Body):
    """A new packer: a name, and a badge code or a PIN (4 to 8 digits) to sign in with."""

    name: PackerName
    badge: Badge | None = None
    pin: Pin | None = None


class PackerPatch(_Body):
    """What changes of a packer: only the fields sent (a null badge or pin removes it)."""

    name: PackerName | None = None
    badge: Badge | None = None
    pin: Pin | None = None
    disabled: bool | None = None


def _public(row: Row[Any], warehouse: str) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "warehouse": warehouse,
        "name": row.name,
        "badge": row.badge,
        "has_pin": row.pin_hash is not None,
        "disabled": bool(row.disabled),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _sync_body(row: Row[Any]) -> str:
    return dumps({"id": int(row.id), "name": row.name, "badge": row.badge, "pin_hash": row.pin_hash})


def _row(conn: Connection, wh_id: int, packer_id: int, warehouse: str) -> Row[Any]:
    table = schema.packers
    row = conn.execute(select(table).where(table.c.id == packer_id, table.c.warehouse_id == wh_id)).first()
    if row is None:
        raise NotFound(
            f"there is no packer {packer_id} in warehouse {warehouse!r}: list them with "
            f"GET /api/v1/warehouses/{warehouse}/packers",
            code="packer_not_found",
        )
    return row


def _check_badge(conn: Connection, wh_id: int, packer_id: int, badge: str | None) -> None:
    """Conflict when another packer of the warehouse has this badge."""
    table = schema.packers
    others = select(table.c.id).where(table.c.warehouse_id == wh_id, table.c.id != packer_id)
    if badge is not None and conn.execute(others.where(table.c.badge == badge)).first() is not None:
        raise Conflict(
            f"another packer of this warehouse has badge {badge!r}: give each packer a badge of their own",
            code="badge_taken",
        )


def _check_pin(store: CloudStore, tenant_id: int, warehouse: str, packer_id: int, pin: str | None) -> None:
    """Conflict when another active packer of the warehouse has this PIN.

    Checked on a read, before the write: argon2 is slow on purpose, and no writer should wait
    for it (two admins giving two packers one PIN at the same instant is not worth a lock).
    """
    if pin is None:
        return
    table = schema.packers
    with store.read() as conn:
        hashes = (
            conn.execute(
                select(table.c.pin_hash).where(
                    table.c.warehouse_id == warehouse_id(conn, tenant_id, warehouse),
                    table.c.id != packer_id,
                    table.c.pin_hash.is_not(None),
                    table.c.disabled.is_(False),
                )
            )
            .scalars()
            .all()
        )
    if any(matches(stored, pin) for stored in hashes):
        raise Conflict(
            "another packer of this warehouse has this PIN: a PIN alone must name one "
            "packer, so pick another",
            code="pin_taken",
        )


def _append_change(tx: WriteTransaction, tenant_id: int, wh_id: int, row: Row[Any]) -> None:
    if row.disabled:
        tx.append_changes(
            [ChangeRecord(tenant_id, wh_id, ChangeKind.PACKER.value, str(row.id), deleted=True)]
        )
    else:
        tx.append_changes(
            [ChangeRecord(tenant_id, wh_id, ChangeKind.PACKER.value, str(row.id), _sync_body(row))]
        )


def create_packer(store: CloudStore, tenant_id: int, warehouse: str, packer: PackerIn) -> dict[str, Any]:
    """Add a packer to a warehouse (synced to its agents); returns it as the API shows it."""
    if packer.badge is None and packer.pin is None:
        raise InputError("a packer signs in with a badge or a PIN: give at least one of badge and pin")
    _check_pin(store, tenant_id, warehouse, 0, packer.pin)
    table = schema.packers
    with store.write() as tx:
        wh_id = warehouse_id(tx.conn, tenant_id, warehouse)
        _check_badge(tx.conn, wh_id, 0, packer.badge)
        packer_id = tx.conn.execute(
            insert(table)
            .values(
                tenant_id=tenant_id,
                warehouse_id=wh_id,
                name=packer.name,
                badge=packer.badge,
                pin_hash=hash_typed(packer.pin) if packer.pin is not None else None,
                disabled=False,
                created_at=tx.now,
                updated_at=tx.now,
            )
            .returning(table.c.id)
        ).scalar_one()
        row = _row(tx.conn, wh_id, int(packer_id), warehouse)
        _append_change(tx, tenant_id, wh_id, row)
        return _public(row, warehouse)


def update_packer(
    store: CloudStore, tenant_id: int, warehouse: str, packer_id: int, patch: PackerPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rename, re-badge, re-PIN, disable or enable a packer; returns (before, after)."""
    sent = patch.model_fields_set
    if "name" in sent and patch.name is None:
        raise InputError("a packer's name cannot be null: send the new name, or leave name out")
    if "disabled" in sent and patch.disabled is None:
        raise InputError("disabled is true or false")
    _check_pin(store, tenant_id, warehouse, packer_id, patch.pin)
    table = schema.packers
    with store.write() as tx:
        wh_id = warehouse_id(tx.conn, tenant_id, warehouse)
        row = _row(tx.conn, wh_id, packer_id, warehouse)
        before = _public(row, warehouse)
        badge = patch.badge if "badge" in sent else row.badge
        values: dict[str, Any] = {}
        if "name" in sent:
            values["name"] = patch.name
        if "badge" in sent:
            values["badge"] = patch.badge
        if "pin" in sent:
            values["pin_hash"] = hash_typed(patch.pin) if patch.pin is not None else None
        if "disabled" in sent:
            values["disabled"] = patch.disabled
        keeps_pin = values.get("pin_hash", row.pin_hash) is not None
        if badge is None and not keeps_pin:
            raise InputError("a packer signs in with a badge or a PIN: keep at least one of them")
        _check_badge(tx.conn, wh_id, packer_id, patch.badge if "badge" in sent else None)
        if not values:
            return before, before
        tx.conn.execute(update(table).where(table.c.id == packer_id).values(updated_at=tx.now, **values))
        row = _row(tx.conn, wh_id, packer_id, warehouse)
        _append_change(tx, tenant_id, wh_id, row)
        return before, _public(row, warehouse)


def list_packers(store: CloudStore, tenant_id: int, warehouse: str) -> list[dict[str, Any]]:
    """The packers of one warehouse (disabled ones too), by name."""
    table = schema.packers
    with store.read() as conn:
        wh_id = warehouse_id(conn, tenant_id, warehouse)
        rows = conn.execute(
            select(table).where(table.c.warehouse_id == wh_id).order_by(table.c.name, table.c.id)
        ).all()
    return [_public(row, warehouse) for row in rows]


def get_packer(store: CloudStore, tenant_id: int, warehouse: str, packer_id: int) -> dict[str, Any]:
    """One packer of a warehouse, as the API shows it."""
    with store.read() as conn:
        return _public(_row(conn, warehouse_id(conn, tenant_id, warehouse), packer_id, warehouse), warehouse)


def packer_sync_bodies(conn: Connection, wh_id: int) -> Iterator[tuple[str, str]]:
    """(key, body) of every active packer of the warehouse as agents receive it, for a snapshot."""
    table = schema.packers
    rows = conn.execute(
        select(table).where(table.c.warehouse_id == wh_id, table.c.disabled.is_(False)).order_by(table.c.id)
    )
    for row in rows:
        yield str(row.id), _sync_body(row)
