"""Staged template rollout: a version goes to chosen warehouses first, then to all; rollback.

    publish v3 to WH1         WH1 runs v3, every other warehouse keeps the tenant's active v2
    publish v3 (everywhere)   v3 becomes the tenant's active version; WH1's staged row goes
    rollback to v2 at WH1     the same as staging v2 at WH1 (versions are immutable)

Each agent always holds exactly one active version per template name: a staged publish sends
that warehouse the old version as inactive, then the new one as active, in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from cloud.labels import templates
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import InputError, NotFound

__all__ = ["effective_template_versions", "publish_to_warehouses", "rollout_status"]


def _warehouse_ids(conn: Connection, tenant_id: int, codes: Collection[str]) -> dict[str, int]:
    wh = schema.warehouses
    found = {
        row.code: int(row.id)
        for row in conn.execute(
            select(wh.c.id, wh.c.code).where(wh.c.tenant_id == tenant_id, wh.c.code.in_(sorted(codes)))
        )
    }
    missing = sorted(set(codes) - set(found))
    if missing:
        raise NotFound(f"there is no warehouse {missing[0]!r}: check the warehouse codes")
    return found


def _tenant_active(conn: Connection, tenant_id: int, name: str) -> int | None:
    tv = schema.template_versions
    found = conn.execute(
        select(tv.c.version).where(tv.c.tenant_id == tenant_id, tv.c.name == name, tv.c.active.is_(True))
    ).scalar()
    return int(found) if found is not None else None


def publish_to_warehouses(
    store: CloudStore, tenant_id: int, name: str, number: int, warehouses: Collection[str]
) -> dict[str, Any]:
    """Make version `number` the active one in these warehouses only (a staged rollout or a rollback)."""
    if not warehouses:
        raise InputError("name at least one warehouse, or publish without 'warehouses' to reach all")
    templates.check_publishable(store, tenant_id, name, number)
    rollouts = schema.template_rollouts
    with store.write() as tx:
        tx.lock_clock()
        ids = _warehouse_ids(tx.conn, tenant_id, warehouses)
        new = templates.stored_version(tx.conn, tenant_id, name, number)
        tenant_version = _tenant_active(tx.conn, tenant_id, name)
        staged = {
            int(row.warehouse_id): int(row.version)
            for row in tx.conn.execute(
                select(rollouts.c.warehouse_id, rollouts.c.version).where(
                    rollouts.c.tenant_id == tenant_id, rollouts.c.name == name
                )
            )
        }
        records = []
        for wh_id in sorted(ids.values()):
            current = staged.get(wh_id, tenant_version)
            if current == number:
                continue
            if current is not None:
                old = templates.stored_version(tx.conn, tenant_id, name, current)
                records.append(
                    templates.template_change(
                        tenant_id, {**templates.template_version_body(old), "active": False}, wh_id
                    )
                )
            records.append(
                templates.template_change(
                    tenant_id, {**templates.template_version_body(new), "active": True}, wh_id
                )
            )
            if wh_id in staged:
                tx.conn.execute(
                    update(rollouts)
                    .where(
                        rollouts.c.tenant_id == tenant_id,
                        rollouts.c.name == name,
                        rollouts.c.warehouse_id == wh_id,
                    )
                    .values(version=number, updated_at=tx.now)
                )
            else:
                tx.conn.execute(
                    insert(rollouts).values(
                        tenant_id=tenant_id, name=name, warehouse_id=wh_id, version=number, updated_at=tx.now
                    )
                )
        tx.append_changes(records)
    return rollout_status(store, tenant_id, name)


def rollout_status(store: CloudStore, tenant_id: int, name: str) -> dict[str, Any]:
    """Which version the tenant runs and which warehouses run another one."""
    rollouts, wh = schema.template_rollouts, schema.warehouses
    with store.read() as conn:
        tenant_version = _tenant_active(conn, tenant_id, name)
        rows = conn.execute(
            select(wh.c.code, rollouts.c.version)
            .join(wh, wh.c.id == rollouts.c.warehouse_id)
            .where(rollouts.c.tenant_id == tenant_id, rollouts.c.name == name)
            .order_by(wh.c.code)
        ).all()
    if tenant_version is None and not rows:
        raise NotFound(f"template {name!r} is not published anywhere: publish a version first")
    return {
        "name": name,
        "active_version": tenant_version,
        "warehouses": {row.code: row.version for row in rows},
    }


def effective_template_versions(conn: Connection, tenant_id: int, warehouse_id: int) -> Iterator[RowMapping]:
    """The one active version per template name that a warehouse's agents hold (for snapshots)."""
    tv, rollouts = schema.template_versions, schema.template_rollouts
    staged = {
        row.name: int(row.version)
        for row in conn.execute(
            select(rollouts.c.name, rollouts.c.version).where(
                rollouts.c.tenant_id == tenant_id, rollouts.c.warehouse_id == warehouse_id
            )
        )
    }
    for row in conn.execute(
        select(tv).where(tv.c.tenant_id == tenant_id, tv.c.active.is_(True)).order_by(tv.c.name)
    ).mappings():
        if row["name"] not in staged:
            yield row
    for name, version in sorted(staged.items()):
        row = templates.stored_version(conn, tenant_id, name, version)
        yield row
