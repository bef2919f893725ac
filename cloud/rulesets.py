"""Decision-center rulesets: immutable numbered versions, simulation against past orders, publish.

A version is compiled (`dockside.rules.compile_ruleset`) when it is saved, so a bad condition is
refused with the rule's number and the reason. A draft is simulated with the very code the pack
path runs: each of the last N orders is decided under the active version and under the draft,
and the orders whose decision changes are listed with a summary. Publishing makes a version the
active one of its name and syncs it to every agent of the tenant (change kind `ruleset`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, select, update

from cloud import schema
from cloud.store import ChangeRecord, CloudStore, dumps
from cloud.versions import check_name, insert_next_version, version_row, version_rows
from dockside.errors import InputError
from dockside.rules import CompiledRuleset, Decision, compile_ruleset
from dockside.sync import ChangeKind

__all__ = [
    "MAX_SIMULATED_ORDERS",
    "active_ruleset",
    "active_ruleset_row",
    "active_rulesets",
    "create_ruleset_version",
    "get_ruleset_version",
    "list_ruleset_versions",
    "publish_ruleset_version",
    "simulate_ruleset_version",
]

MAX_SIMULATED_ORDERS = 10_000
_COMPARED = ("carrier", "service", "template", "printer_role", "weight_tolerance_g")


def _check_name(name: str) -> None:
    check_name(name, "ruleset", " (the edge packs with the one named 'default')")


def _body(row: RowMapping) -> dict[str, Any]:
    return {
        "name": row["name"],
        "version": row["version"],
        **json.loads(row["body"]),
        "active": bool(row["active"]),
        "created_at": row["created_at"].isoformat(),
        "created_by": row["created_by"],
        "published_at": row["published_at"].isoformat() if row["published_at"] else None,
    }


def _sync_body(row: RowMapping) -> str:
    # What agents hold and decide with: the rules and their name and version, nothing else.
    return dumps({"name": row["name"], "version": row["version"], **json.loads(row["body"])})


def create_ruleset_version(
    store: CloudStore, tenant_id: int, name: str, ruleset: Mapping[str, Any], created_by: str = ""
) -> dict[str, Any]:
    """Validate a ruleset and store it as the next version of `name` (a draft, not active)."""
    _check_name(name)
    if not isinstance(ruleset, Mapping):
        raise InputError("a ruleset must be a JSON object with 'default', 'rules' and 'sku_tags'")
    content = {key: value for key, value in ruleset.items() if key not in ("name", "version")}
    compile_ruleset(content)
    text = dumps({"default": {}, "rules": [], "sku_tags": {}, **content})
    values = {"body": text, "created_by": created_by[:100], "active": False}
    return insert_next_version(
        store,
        schema.ruleset_versions,
        tenant_id,
        name,
        values,
        lambda conn, number: _body(_row(conn, tenant_id, name, number)),
    )


def _row(conn: Connection, tenant_id: int, name: str, number: int) -> RowMapping:
    return version_row(conn, schema.ruleset_versions, "ruleset", tenant_id, name, number)


def get_ruleset_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """One version of a ruleset."""
    _check_name(name)
    with store.read() as conn:
        return _body(_row(conn, tenant_id, name, number))


def list_ruleset_versions(store: CloudStore, tenant_id: int, name: str) -> list[dict[str, Any]]:
    """Every version of a ruleset, oldest first (NotFound when it has none)."""
    _check_name(name)
    with store.read() as conn:
        rows = version_rows(conn, schema.ruleset_versions, "ruleset", tenant_id, name)
    return [_body(row) for row in rows]


def active_ruleset(conn: Connection, tenant_id: int, name: str = "default") -> dict[str, Any] | None:
    """The active version of a ruleset as agents hold it, or None when none is published."""
    table = schema.ruleset_versions
    row = (
        conn.execute(
            select(table).where(
                table.c.tenant_id == tenant_id, table.c.name == name, table.c.active.is_(True)
            )
        )
        .mappings()
        .first()
    )
    return json.loads(_sync_body(row)) if row is not None else None


def active_ruleset_row(
    conn: Connection, tenant_id: int, name: str = "default"
) -> tuple[int, dict[str, Any]] | None:
    """(version, ruleset) of the active version of a ruleset, or None when none is published."""
    found = active_ruleset(conn, tenant_id, name)
    return (int(found["version"]), found) if found is not None else None


def active_rulesets(conn: Connection, tenant_id: int) -> Iterator[tuple[str, str]]:
    """(name, sync body) of every active ruleset of a tenant (for snapshots)."""
    table = schema.ruleset_versions
    for row in conn.execute(
        select(table).where(table.c.tenant_id == tenant_id, table.c.active.is_(True)).order_by(table.c.name)
    ).mappings():
        yield row["name"], _sync_body(row)


def publish_ruleset_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """Make a version the active one of its name and sync it to every agent of the tenant."""
    _check_name(name)
    table = schema.ruleset_versions
    with store.write() as tx:
        tx.lock_clock()
        row = _row(tx.conn, tenant_id, name, number)
        if row["active"]:
            return _body(row)
        compile_ruleset(json.loads(row["body"]))  # stored versions were valid; the code may be newer
        tx.conn.execute(
            update(table)
            .where(table.c.tenant_id == tenant_id, table.c.name == name, table.c.active.is_(True))
            .values(active=False)
        )
        tx.conn.execute(update(table).where(table.c.id == row["id"]).values(active=True, published_at=tx.now))
        # Rulesets belong to the tenant: every warehouse's agents get the active version.
        tx.append_changes([ChangeRecord(tenant_id, None, ChangeKind.RULESET.value, name, _sync_body(row))])
        return _body(_row(tx.conn, tenant_id, name, number))


def _decision_dict(decision: Decision) -> dict[str, Any]:
    return {key: getattr(decision, key) for key in (*_COMPARED, "rule")}


def _parcel_weight(order: Mapping[str, Any]) -> int:
    # Past orders are simulated at the weight the OMS expected; a packed order's real weight
    # would be better and is a later refinement.
    return int(order.get("expected_weight_g") or 0)


def simulate_ruleset_version(
    store: CloudStore,
    tenant_id: int,
    name: str,
    number: int,
    last: int,
    *,
    warehouses: Collection[str] | None = None,
) -> dict[str, Any]:
    """Decide the last `last` orders under the active version and under version `number`.

    Returns {"summary": {...}, "changes": [{"order_ref", "before", "after", "changed"}]} listing
    only the orders whose decision differs.
    """
    _check_name(name)
    if not 1 <= last <= MAX_SIMULATED_ORDERS:
        raise InputError(f"'last' must be 1 to {MAX_SIMULATED_ORDERS:,} orders: simulate fewer orders")
    orders = schema.orders
    with store.read() as conn:
        draft = compile_ruleset(json.loads(_row(conn, tenant_id, name, number)["body"]))
        active = active_ruleset(conn, tenant_id, name)
        query = select(orders.c.body).where(orders.c.tenant_id == tenant_id)
        if warehouses is not None:
            query = query.join(schema.warehouses, schema.warehouses.c.id == orders.c.warehouse_id).where(
                schema.warehouses.c.code.in_(sorted(warehouses))
            )
        bodies = conn.execute(query.order_by(orders.c.id.desc()).limit(last)).scalars().all()
    current = compile_ruleset(active) if active is not None else CompiledRuleset({}, (), {})
    changes = []
    counts = dict.fromkeys(_COMPARED, 0)
    for text in reversed(bodies):
        order = json.loads(text)
        weight = _parcel_weight(order)
        before = _decision_dict(current.decide(order, weight))
        after = _decision_dict(draft.decide(order, weight))
        changed = [key for key in _COMPARED if before[key] != after[key]]
        if changed:
            for key in changed:
                counts[key] += 1
            changes.append(
                {"order_ref": order["order_ref"], "before": before, "after": after, "changed": changed}
            )
    return {
        "summary": {
            "orders": len(bodies),
            "changed": len(changes),
            "carrier_changed": counts["carrier"],
            "service_changed": counts["service"],
            "template_changed": counts["template"],
            "printer_role_changed": counts["printer_role"],
            "weight_tolerance_changed": counts["weight_tolerance_g"],
            "active_version": active["version"] if active is not None else None,
            "draft_version": number,
        },
        "changes": changes,
    }
