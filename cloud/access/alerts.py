"""Unusual activity, seen within seconds: an exception in the center and an `alert.raised` webhook.

    a sign-in from an address the user has not used   users.sign_in         -> seen_at()
    repeated failed sign-ins of one account            users.sign_in         -> failed_sign_ins()
    an API token used from a new address               access (every call)   -> seen_at()
    a burst of reprints at one station                 run_alerts(), every SCAN_INTERVAL_S
    a bulk export                                      api.records (export)  -> bulk_export()

Each alert names who (actor id and name), where (address, or warehouse and station) and what.
An actor's first address is its baseline and raises nothing; each later new one raises once.
Thresholds are per tenant (table alert_thresholds, `PUT /api/v1/alerts/thresholds/{kind}`); a
kind without a row uses DEFAULTS. A count of 0 turns a kind off. One alert per kind and subject
(account, station, ...) is raised per window, so an attack raises one alert, not thousands.

Reprint bursts are found from the stored edge events (order_events, kind label_reprinted), not
inside the edge event write, so the agent's event path carries no extra work; the scan reads only
the last minutes of events through an index on (kind, received_at). The agent reports no void
events yet; when it does, they join _BURST_EVENTS.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.storage import schema
from cloud.storage.periodic import run_every
from cloud.storage.store import CloudStore, WriteTransaction, utcnow
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import InputError
from dockside.sync import EventKind

__all__ = [
    "DEFAULTS",
    "SCAN_INTERVAL_S",
    "AlertKind",
    "Threshold",
    "bulk_export",
    "failed_sign_ins",
    "is_known_address",
    "raise_alert",
    "run_alerts",
    "scan_reprint_bursts",
    "seen_at",
    "set_threshold",
    "thresholds",
]

log = logging.getLogger(__name__)
SCAN_INTERVAL_S = 5.0
_BURST_EVENTS = (EventKind.LABEL_REPRINTED.value,)
_MAX_COUNT = 1_000_000
_MAX_WINDOW_S = 86_400


class AlertKind(StrEnum):
    """What kind of unusual activity an alert reports."""

    NEW_SIGN_IN_ADDRESS = "new_sign_in_address"
    FAILED_SIGN_INS = "failed_sign_ins"
    TOKEN_NEW_ADDRESS = "token_new_address"  # noqa: S105 - an alert kind, not a secret
    REPRINT_BURST = "reprint_burst"
    BULK_EXPORT = "bulk_export"


@dataclass(frozen=True, slots=True)
class Threshold:
    """When a kind raises: `count` things (0: never) within `window_s` seconds."""

    count: int
    window_s: int


# new addresses: on (1) or off (0), window = how long one alert stands for its actor and address;
# failed sign-ins: failures of one account within the sign-in limit's 15 minutes, one alert per
# window; reprint bursts: reprints at one station within the window; bulk export: records in
# one export, one alert per actor per window.
DEFAULTS: dict[AlertKind, Threshold] = {
    AlertKind.NEW_SIGN_IN_ADDRESS: Threshold(1, 3600),
    AlertKind.FAILED_SIGN_INS: Threshold(5, 900),
    AlertKind.TOKEN_NEW_ADDRESS: Threshold(1, 3600),
    AlertKind.REPRINT_BURST: Threshold(10, 60),
    AlertKind.BULK_EXPORT: Threshold(1000, 60),
}


def thresholds(store: CloudStore, tenant_id: int) -> dict[AlertKind, Threshold]:
    """The tenant's thresholds: its own where set, the defaults elsewhere."""
    table = schema.alert_thresholds
    with store.read() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant_id)).all()
    found = dict(DEFAULTS)
    for row in rows:
        if row.kind in AlertKind.__members__.values():
            found[AlertKind(row.kind)] = Threshold(int(row._mapping["count"]), int(row.window_s))
    return found


def set_threshold(
    store: CloudStore, tenant_id: int, kind: AlertKind, threshold: Threshold
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set one kind's threshold for a tenant; returns (before, after)."""
    if not 0 <= threshold.count <= _MAX_COUNT or not 1 <= threshold.window_s <= _MAX_WINDOW_S:
        raise InputError(
            f"a threshold's count is 0 (off) to {_MAX_COUNT:,} and its window 1 to {_MAX_WINDOW_S:,} seconds"
        )
    before = thresholds(store, tenant_id)[kind]
    table = schema.alert_thresholds
    with store.write() as tx:
        tx.conn.execute(delete(table).where(table.c.tenant_id == tenant_id, table.c.kind == kind.value))
        tx.conn.execute(
            insert(table).values(
                tenant_id=tenant_id, kind=kind.value, count=threshold.count, window_s=threshold.window_s
            )
        )
    return _threshold_body(kind, before), _threshold_body(kind, threshold)


def _threshold_body(kind: AlertKind, threshold: Threshold) -> dict[str, Any]:
    return {"kind": kind.value, "count": threshold.count, "window_s": threshold.window_s}


def _threshold(tx: WriteTransaction, tenant_id: int, kind: AlertKind) -> Threshold:
    table = schema.alert_thresholds
    row = tx.conn.execute(
        select(table.c.count, table.c.window_s).where(
            table.c.tenant_id == tenant_id, table.c.kind == kind.value
        )
    ).first()
    return Threshold(int(row[0]), int(row[1])) if row is not None else DEFAULTS[kind]


def raise_alert(
    tx: WriteTransaction,
    tenant_id: int,
    kind: AlertKind,
    *,
    subject: str,
    who: dict[str, Any],
    where: dict[str, Any],
    what: str,
    warehouse_id: int | None = None,
) -> int | None:
    """Open an alert (exception plus webhook) unless this kind and subject raised one in its window.

    Returns the exception's id, or None when the kind is off or already raised for `subject`.
    """
    threshold = _threshold(tx, tenant_id, kind)
    if threshold.count == 0:
        return None
    # Replicas may see the same activity at once: one of them raises it.
    tx.lock_clock()
    table = schema.alerts
    recent = tx.conn.execute(
        select(table.c.id).where(
            table.c.tenant_id == tenant_id,
            table.c.kind == kind.value,
            table.c.subject == subject[:200],
            table.c.raised_at > tx.now - timedelta(seconds=threshold.window_s),
        )
    ).first()
    if recent is not None:
        return None
    detail = {"alert": kind.value, "who": who, "where": where, "what": what}
    exception_id = open_exception(
        tx,
        tenant_id=tenant_id,
        warehouse_id=warehouse_id,
        order_ref=None,
        kind=ExceptionKind.ACCESS_ALERT,
        message=what,
        detail=detail,
    )
    tx.conn.execute(
        insert(table).values(
            tenant_id=tenant_id,
            kind=kind.value,
            subject=subject[:200],
            raised_at=tx.now,
            exception_id=exception_id,
        )
    )
    emit(
        tx,
        tenant_id,
        WebhookEvent.ALERT_RAISED,
        [{"exception_id": exception_id, "at": tx.now.isoformat(), **detail}],
    )
    log.warning("alert %s raised: %s", kind.value, what)
    return exception_id


def is_known_address(store: CloudStore, actor: str, address: str) -> bool:
    """Whether `actor` (user:<id>, token:<id>) was seen at `address` before."""
    table = schema.known_addresses
    with store.read() as conn:
        found = conn.execute(
            select(table.c.id).where(table.c.actor == actor, table.c.address == address[:64])
        ).first()
    return found is not None


def seen_at(
    store: CloudStore, *, tenant_id: int, actor: str, name: str, address: str, kind: AlertKind
) -> int | None:
    """Note that `actor` acted from `address`; an address new to an actor with others raises `kind`."""
    table = schema.known_addresses
    address = address[:64]
    with store.write() as tx:
        known = tx.conn.execute(
            select(table.c.address).where(table.c.actor == actor, table.c.address == address)
        ).first()
        if known is not None:
            return None
        others = tx.conn.execute(select(func.count()).where(table.c.actor == actor)).scalar_one()
        statement = (pg_insert if tx.dialect == "postgresql" else sqlite_insert)(table)
        added = tx.conn.execute(
            statement.values(tenant_id=tenant_id, actor=actor, address=address, first_seen_at=tx.now)
            .on_conflict_do_nothing(index_elements=["actor", "address"])
            .returning(table.c.id)
        ).first()
        if not others or added is None:
            return None  # the actor's first address (its baseline), or another replica noted it
        what = (
            f"{name} signed in from {address}, an address not seen for this user before"
            if kind is AlertKind.NEW_SIGN_IN_ADDRESS
            else f"API token {name!r} ({actor}) was used from {address}, an address not seen for it before"
        )
        return raise_alert(
            tx,
            tenant_id,
            kind,
            subject=f"{actor}@{address}",
            who={"actor": actor, "name": name},
            where={"address": address},
            what=what,
        )


def failed_sign_ins(
    store: CloudStore, *, tenant_id: int, actor: str, name: str, address: str, failures: int
) -> int | None:
    """Raise FAILED_SIGN_INS when an account's failures reached the tenant's threshold."""
    with store.write() as tx:
        threshold = _threshold(tx, tenant_id, AlertKind.FAILED_SIGN_INS)
        if threshold.count == 0 or failures < threshold.count:
            return None
        return raise_alert(
            tx,
            tenant_id,
            AlertKind.FAILED_SIGN_INS,
            subject=actor,
            who={"actor": actor, "name": name},
            where={"address": address},
            what=f"{failures} failed sign-ins for {name} within 15 minutes, the last from {address}",
        )


def bulk_export(
    store: CloudStore, *, tenant_id: int, actor: str, name: str, what: str, records: int
) -> int | None:
    """Raise BULK_EXPORT once an export has handed out the threshold's count of records."""
    with store.write() as tx:
        threshold = _threshold(tx, tenant_id, AlertKind.BULK_EXPORT)
        if threshold.count == 0 or records < threshold.count:
            return None
        return raise_alert(
            tx,
            tenant_id,
            AlertKind.BULK_EXPORT,
            subject=f"{actor}/{what}",
            who={"actor": actor, "name": name},
            where={"export": what},
            what=f"{name} ({actor}) is exporting {what}: {records:,} records so far",
        )


def _most_within(moments: list[datetime], window: timedelta) -> int:
    """The most moments that fit in one span of `window` (two pointers over sorted moments)."""
    moments.sort()
    best, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def scan_reprint_bursts(store: CloudStore, *, now: datetime | None = None) -> int:
    """Raise REPRINT_BURST for each station whose reprints within its tenant's window reached the
    count; returns how many alerts this scan raised."""
    moment = now or utcnow()
    table, limits = schema.order_events, schema.alert_thresholds
    with store.read() as conn:
        custom = conn.execute(
            select(limits.c.tenant_id, limits.c.count, limits.c.window_s).where(
                limits.c.kind == AlertKind.REPRINT_BURST.value
            )
        ).all()
        widest = max([DEFAULTS[AlertKind.REPRINT_BURST].window_s, *(int(row.window_s) for row in custom)])
        # Events arrive after they happen (the outbox drains in batches): look a little further back.
        rows = conn.execute(
            select(
                table.c.tenant_id,
                table.c.warehouse_id,
                table.c.station,
                table.c.agent_id,
                table.c.occurred_at,
            )
            .where(
                table.c.kind.in_(_BURST_EVENTS),
                table.c.received_at >= moment - timedelta(seconds=widest + 60),
            )
            .limit(100_000)
        ).all()
    if not rows:
        return 0
    per_tenant = {int(row[0]): Threshold(int(row[1]), int(row[2])) for row in custom}
    stations: dict[tuple[int, int, str], list[datetime]] = defaultdict(list)
    agents: dict[tuple[int, int, str], str | None] = {}
    for row in rows:
        key = (int(row.tenant_id), int(row.warehouse_id), row.station)
        stations[key].append(row.occurred_at)
        agents[key] = row.agent_id
    raised = 0
    for (tenant_id, warehouse_id, station), moments in stations.items():
        threshold = per_tenant.get(tenant_id, DEFAULTS[AlertKind.REPRINT_BURST])
        window = timedelta(seconds=threshold.window_s)
        recent = [at for at in moments if at >= moment - window - timedelta(seconds=60)]
        if threshold.count == 0 or _most_within(recent, window) < threshold.count:
            continue
        raised += _raise_burst(
            store, tenant_id, warehouse_id, station, agents[(tenant_id, warehouse_id, station)], threshold
        )
    return raised


def _raise_burst(
    store: CloudStore,
    tenant_id: int,
    warehouse_id: int,
    station: str,
    agent: str | None,
    threshold: Threshold,
) -> int:
    with store.write() as tx:
        code = tx.conn.execute(
            select(schema.warehouses.c.code).where(schema.warehouses.c.id == warehouse_id)
        ).scalar_one()
        opened = raise_alert(
            tx,
            tenant_id,
            AlertKind.REPRINT_BURST,
            subject=f"{code}/{station}",
            who={"actor": f"agent:{agent}" if agent else None, "name": station},
            where={"warehouse": code, "station": station},
            what=(
                f"{threshold.count} or more labels reprinted within {threshold.window_s} s "
                f"at station {station} of warehouse {code}"
            ),
            warehouse_id=warehouse_id,
        )
    return 1 if opened is not None else 0


async def run_alerts(store: CloudStore, stop: asyncio.Event, *, interval_s: float = SCAN_INTERVAL_S) -> None:
    """Scan for reprint bursts every `interval_s` until `stop` is set (one scanner per process)."""
    await run_every(scan_reprint_bursts, store, stop, interval_s=interval_s, what="alert scan")
