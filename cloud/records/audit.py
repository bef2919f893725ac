"""The audit log: every admin write, with who, when, what, and the object before and after.

Each entry names its actor by a unique id (`token:<id>`, `user:<id>`, or `cli:<os user>` for
`dockside-cloud` run on the server) with the actor's display name at the time beside it
(`actor_name`): two tokens may share a name, never an id.

Entries are only ever added; `purge_audit` removes entries older than the retention, which may
never be shorter than six months. Secrets (tokens) are never written here.

Each entry records the warehouse its object belongs to (a warehouse, station, agent, order,
exception, wave or manifest), found from the object itself, or NULL for tenant-wide objects (templates,
rulesets, webhooks, releases, order ingest batches). A caller limited to some warehouses reads
only the entries of those warehouses: tenant-wide entries can describe any warehouse, so they are
for tenant-wide callers only.

An entry commits with the write it describes, or neither commits:

    with store.unit_of_work():
        saved = warehouses.put_warehouse(store, ...)
        audit.record(store, caller, "put_warehouse", "warehouse", code, before, saved)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from cloud.access.principals import Principal
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps, utcnow
from dockside.errors import InputError, NotFound

__all__ = [
    "MIN_RETENTION_DAYS",
    "active_version_before",
    "before_of",
    "iter_audit",
    "purge_audit",
    "query_audit",
    "record",
    "record_many",
]

MIN_RETENTION_DAYS = 183  # "kept at least six months"
MAX_LISTED = 1000


# Object kinds that live in one warehouse: the table, its key column and how to read the key.
_IN_A_WAREHOUSE: dict[str, tuple[Table, str, type]] = {
    "agent": (schema.agents, "id", str),
    "order": (schema.orders, "order_ref", str),
    "exception": (schema.order_exceptions, "id", int),
    "wave": (schema.waves, "id", int),
    "manifest": (schema.manifests, "id", int),
}


def _warehouse_of(conn: Connection, tenant_id: int, object_kind: str, object_key: str) -> str | None:
    """The code of the warehouse an object belongs to, or None for a tenant-wide object."""
    if object_kind == "warehouse":
        return object_key
    if object_kind in ("station", "packer"):  # keyed "WH/STATION" or "WH/PACKER_ID"
        return object_key.partition("/")[0]
    if object_kind not in _IN_A_WAREHOUSE:
        return None
    table, key_column, key_type = _IN_A_WAREHOUSE[object_kind]
    try:
        key = key_type(object_key)
    except ValueError:
        return None
    warehouses = schema.warehouses
    code = conn.execute(
        select(warehouses.c.code)
        .join(table, table.c.warehouse_id == warehouses.c.id)
        .where(table.c[key_column] == key, warehouses.c.tenant_id == tenant_id)
    ).scalar()
    return str(code) if code is not None else None


def before_of(read: Callable[[], Any]) -> Any:
    """An object's state before a change, for its entry: what `read` returns, or None when it is new."""
    try:
        return read()
    except NotFound:
        return None


def active_version_before(versions: Callable[[], Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """{"active_version": n or None} of a versioned name (template, ruleset), before a publish."""
    found = before_of(versions) or []
    return {"active_version": next((v["version"] for v in found if v.get("active")), None)}


def record(
    store: CloudStore,
    caller: Principal,
    action: str,
    object_kind: str,
    object_key: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """Add one entry for a write `caller` made (inside the write's `store.unit_of_work()`).

    The entry's warehouse is the object's own (see the module docstring).
    """
    with store.write() as tx:
        warehouse = _warehouse_of(tx.conn, caller.tenant_id, object_kind, object_key)
        tx.conn.execute(
            insert(schema.audit_log).values(
                tenant_id=caller.tenant_id,
                warehouse=warehouse[:32] if warehouse is not None else None,
                at=tx.now,
                actor=caller.actor[:100],
                actor_name=caller.token_name[:100],
                role=caller.role.value,
                action=action[:64],
                object_kind=object_kind[:32],
                object_key=object_key[:200],
                before=dumps(before) if before is not None else None,
                after=dumps(after) if after is not None else None,
            )
        )


def record_many(
    store: CloudStore,
    caller: Principal,
    action: str,
    object_kind: str,
    entries: Collection[tuple[str, str | None, Any, Any]],
) -> None:
    """Add one entry per (object_key, warehouse code, before, after) in one statement, for a bulk
    write whose objects' warehouses the writer already knows (an ingest's amended orders)."""
    if not entries:
        return
    with store.write() as tx:
        tx.conn.execute(
            insert(schema.audit_log),
            [
                {
                    "tenant_id": caller.tenant_id,
                    "warehouse": warehouse[:32] if warehouse is not None else None,
                    "at": tx.now,
                    "actor": caller.actor[:100],
                    "actor_name": caller.token_name[:100],
                    "role": caller.role.value,
                    "action": action[:64],
                    "object_kind": object_kind[:32],
                    "object_key": key[:200],
                    "before": dumps(before) if before is not None else None,
                    "after": dumps(after) if after is not None else None,
                }
                for key, warehouse, before, after in entries
            ],
        )


def _entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "actor_name": row.actor_name,
        "role": row.role,
        "action": row.action,
        "object_kind": row.object_kind,
        "object_key": row.object_key,
        "warehouse": row.warehouse,
        "before": json.loads(row.before) if row.before is not None else None,
        "after": json.loads(row.after) if row.after is not None else None,
    }


def _select(
    tenant_id: int,
    warehouses: Collection[str] | None,
    object_kind: str | None,
    object_key: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    table = schema.audit_log
    query = select(table).where(table.c.tenant_id == tenant_id)
    if warehouses is not None:
        # NULL (tenant-wide) is not in any list: a scoped caller sees only its warehouses' entries.
        query = query.where(table.c.warehouse.in_(sorted(warehouses)))
    for column, value in (
        (table.c.object_kind, object_kind),
        (table.c.object_key, object_key),
        (table.c.actor, actor),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(table.c.at >= since)
    if until is not None:
        query = query.where(table.c.at < until)
    return query


def query_audit(
    store: CloudStore,
    tenant_id: int,
    *,
    warehouses: Collection[str] | None = None,
    object_kind: str | None = None,
    object_key: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries of a tenant (of `warehouses` only, when given), newest first, by object, user and time."""
    table = schema.audit_log
    query = _select(tenant_id, warehouses, object_kind, object_key, actor, since, until)
    with store.read() as conn:
        rows = conn.execute(query.order_by(table.c.id.desc()).limit(min(limit, MAX_LISTED))).all()
    return [_entry(row) for row in rows]


def iter_audit(
    store: CloudStore, tenant_id: int, *, warehouses: Collection[str] | None = None, page: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every entry of a tenant (of `warehouses` only, when given), oldest first, a page at a time."""
    table = schema.audit_log
    last = 0
    while True:
        with store.read() as conn:
            rows = conn.execute(
                _select(tenant_id, warehouses, None, None, None, None, None)
                .where(table.c.id > last)
                .order_by(table.c.id)
                .limit(page)
            ).all()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        last = rows[-1].id


def purge_audit(
    store: CloudStore, *, keep_days: int = MIN_RETENTION_DAYS, now: datetime | None = None
) -> int:
    """Delete entries older than `keep_days` (at least six months); returns how many went."""
    if keep_days < MIN_RETENTION_DAYS:
        raise InputError(
            f"the audit log is kept at least {MIN_RETENTION_DAYS} days: ask for a longer retention"
        )
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    with store.write() as tx:
        result = tx.conn.execute(delete(schema.audit_log).where(schema.audit_log.c.at < cutoff))
    return int(result.rowcount)
