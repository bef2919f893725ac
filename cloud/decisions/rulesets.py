"""Decision-center rulesets: immutable numbered versions, simulation against past orders, publish.

A version is compiled (`dockside.rules.compile_ruleset`) when it is saved, so a bad condition is
refused with the rule's number and the reason, and checked again when it is published, with what
it names: every template must be published to every warehouse and every printer role present at
every station. A draft is simulated with the very code the pack path runs: each of the last N
orders is decided under the active version and under the draft, and the orders whose decision
changes are listed with a summary. Publishing makes a version the active one of its name and
syncs it to every agent of the tenant (change kind `ruleset`). Rules are evaluated only outside
write transactions, so a slow one never holds another writer.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, RowMapping, select, update

from cloud.labels.rollout import effective_template_versions
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from cloud.storage.versions import VersionedNames
from dockside.errors import InputError
from dockside.rules import CompiledRuleset, Decision, compile_ruleset
from dockside.sync import ChangeKind

__all__ = [
    "MAX_SIMULATED_ORDERS",
    "active_ruleset",
    "active_ruleset_text",
    "active_rulesets",
    "create_ruleset_version",
    "get_ruleset_version",
    "list_ruleset_versions",
    "publish_ruleset_version",
    "simulate_ruleset_version",
]

MAX_SIMULATED_ORDERS = 10_000
_COMPARED = ("carrier", "service", "template", "printer_role", "weight_tolerance_g")


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


_VERSIONS = VersionedNames(
    schema.ruleset_versions, "ruleset", _body, " (the edge packs with the one named 'default')"
)


def _sync_body(row: RowMapping) -> str:
    # What agents hold and decide with: the rules and their name and version, nothing else.
    return dumps({"name": row["name"], "version": row["version"], **json.loads(row["body"])})


def create_ruleset_version(
    store: CloudStore, tenant_id: int, name: str, ruleset: Mapping[str, Any], created_by: str = ""
) -> dict[str, Any]:
    """Validate a ruleset and store it as the next version of `name` (a draft, not active)."""
    _VERSIONS.check_name(name)
    if not isinstance(ruleset, Mapping):
        raise InputError("a ruleset must be a JSON object with 'default', 'rules' and 'sku_tags'")
    content = {key: value for key, value in ruleset.items() if key not in ("name", "version")}
    compile_ruleset(content)
    text = dumps({"default": {}, "rules": [], "sku_tags": {}, **content})
    return _VERSIONS.create(
        store, tenant_id, name, {"body": text, "created_by": created_by[:100], "active": False}
    )


def get_ruleset_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """One version of a ruleset."""
    return _VERSIONS.version(store, tenant_id, name, number)


def list_ruleset_versions(store: CloudStore, tenant_id: int, name: str) -> list[dict[str, Any]]:
    """Every version of a ruleset, oldest first (NotFound when it has none)."""
    return _VERSIONS.versions(store, tenant_id, name)


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


def active_ruleset_text(conn: Connection, tenant_id: int, name: str = "default") -> str | None:
    """The stored JSON text (default, rules, sku_tags) of a ruleset's active version, or None."""
    table = schema.ruleset_versions
    found = conn.execute(
        select(table.c.body).where(
            table.c.tenant_id == tenant_id, table.c.name == name, table.c.active.is_(True)
        )
    ).scalar()
    return str(found) if found is not None else None


def active_rulesets(conn: Connection, tenant_id: int) -> Iterator[tuple[str, str]]:
    """(name, sync body) of every active ruleset of a tenant (for snapshots)."""
    table = schema.ruleset_versions
    for row in conn.execute(
        select(table).where(table.c.tenant_id == tenant_id, table.c.active.is_(True)).order_by(table.c.name)
    ).mappings():
        yield row["name"], _sync_body(row)


def _sscc_carriers_named(ruleset: CompiledRuleset) -> list[tuple[str, str]]:
    """(where, code) for each carton label that takes its own SSCC from a carrier account."""
    places = [("the default", ruleset.default)] + [
        (f"rule {number} ({rule.name!r})", rule.then) for number, rule in enumerate(ruleset.rules, start=1)
    ]
    return [
        (f"{where}, its {document.kind.value} document", document.carrier)
        for where, actions in places
        for document in actions.get("documents", ())
        if document.carrier
    ]


def _missing_carriers(conn: Connection, tenant_id: int, named: list[tuple[str, str]]) -> list[str]:
    """Carton labels' carriers that are not sscc carrier accounts of the tenant."""
    if not named:
        return []
    table = schema.carriers
    kinds = {
        row.code: str(json.loads(row.tracking).get("kind", ""))
        for row in conn.execute(
            select(table.c.code, table.c.tracking).where(
                table.c.tenant_id == tenant_id, table.c.code.in_(sorted({code for _, code in named}))
            )
        )
    }
    problems = []
    for where, code in named:
        kind = kinds.get(code)
        if kind is None:
            problems.append(
                f"{where} names carrier {code!r}, which is not a carrier account: "
                "create it (tracking kind sscc) first"
            )
        elif kind != "sscc":
            problems.append(
                f"{where} names carrier {code!r}, whose tracking kind is {kind}, not sscc: "
                "name an sscc carrier account"
            )
    return problems


def _missing_references(conn: Connection, tenant_id: int, ruleset: CompiledRuleset) -> list[str]:
    """What the ruleset names that its warehouses lack: templates not published to a warehouse,
    printer roles a station has no printer for, carton labels' carriers that are not sscc carrier
    accounts. A ruleset reaches every warehouse of the tenant."""
    carrier_problems = _missing_carriers(conn, tenant_id, _sscc_carriers_named(ruleset))
    templates, roles = ruleset.named("template"), ruleset.named("printer_role")
    if not templates and not roles:
        return carrier_problems
    wh, st = schema.warehouses, schema.stations
    warehouses = conn.execute(
        select(wh.c.id, wh.c.code).where(wh.c.tenant_id == tenant_id).order_by(wh.c.code)
    ).all()
    published = {
        row.code: {version["name"] for version in effective_template_versions(conn, tenant_id, int(row.id))}
        for row in warehouses
    }
    stations: dict[str, set[str]] = {}  # "WH1/S1": the roles of its printers
    for row in conn.execute(
        select(wh.c.code.label("warehouse"), st.c.code, st.c.body)
        .join(wh, wh.c.id == st.c.warehouse_id)
        .where(wh.c.tenant_id == tenant_id)
        .order_by(wh.c.code, st.c.code)
    ):
        printers = json.loads(row.body).get("printers") or []
        stations[f"{row.warehouse}/{row.code}"] = {str(p.get("role", "label")) for p in printers}
    problems = []
    for where, template in templates:
        lacking = [code for code, names in published.items() if template not in names]
        if lacking:
            problems.append(
                f"{where} names template {template!r}, which is not published to {_listed(lacking)}: "
                "publish it there first"
            )
    for where, role in roles:
        lacking = [station for station, held in stations.items() if role not in held]
        if lacking:
            problems.append(
                f"{where} names printer role {role!r}, which station {_listed(lacking)} has no printer for: "
                "give those stations a printer with that role"
            )
    return problems + carrier_problems


def _listed(codes: list[str], shown: int = 10) -> str:
    more = f" and {len(codes) - shown} more" if len(codes) > shown else ""
    return ", ".join(codes[:shown]) + more


def publish_ruleset_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """Make a version the active one of its name and sync it to every agent of the tenant.

    Refused (InputError `ruleset_references_missing`) when a template or printer role it names is
    missing at a warehouse it reaches, or a carton label's carrier is not an sscc carrier account.
    The checks run before the write transaction, which holds no rule work at all.
    """
    _VERSIONS.check_name(name)
    table = schema.ruleset_versions
    with store.read() as conn:
        row = _VERSIONS.row(conn, tenant_id, name, number)
        if row["active"]:
            return _body(row)
        # Stored versions were valid when saved; the code may be stricter now.
        problems = _missing_references(conn, tenant_id, compile_ruleset(json.loads(row["body"])))
    if problems:
        raise InputError(
            f"ruleset {name!r} version {number} cannot be published: " + "; ".join(problems[:10]),
            code="ruleset_references_missing",
        )
    with store.write() as tx:
        tx.lock_clock()
        row = _VERSIONS.row(tx.conn, tenant_id, name, number)
        if row["active"]:
            return _body(row)
        tx.conn.execute(
            update(table)
            .where(table.c.tenant_id == tenant_id, table.c.name == name, table.c.active.is_(True))
            .values(active=False)
        )
        tx.conn.execute(update(table).where(table.c.id == row["id"]).values(active=True, published_at=tx.now))
        # Rulesets belong to the tenant: every warehouse's agents get the active version.
        tx.append_changes([ChangeRecord(tenant_id, None, ChangeKind.RULESET.value, name, _sync_body(row))])
        return _body(_VERSIONS.row(tx.conn, tenant_id, name, number))


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
    _VERSIONS.check_name(name)
    if not 1 <= last <= MAX_SIMULATED_ORDERS:
        raise InputError(f"'last' must be 1 to {MAX_SIMULATED_ORDERS:,} orders: simulate fewer orders")
    orders = schema.orders
    with store.read() as conn:
        draft = compile_ruleset(json.loads(_VERSIONS.row(conn, tenant_id, name, number)["body"]))
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
