"""The packing report: labels, parcels and errors per packer, station and UTC hour, from edge events.

    GET /api/v1/reports/packing?warehouse=WH1&from=2026-12-07T08:00:00Z&to=2026-12-07T16:00:00Z

Counted from the events the agents sent (each names the packer signed in at its station, or none):

    labels   label_printed and label_reprinted: every label a printer took, reprints included
    parcels  order_packed: every parcel packed (scanned, or printed in a wave)
    errors   label_failed and job_unknown: labels that broke mid-send or whose fate is unknown

An event counts in the hour it happened at the station (the agent's clock), in UTC. The range is
[from, to), at most `MAX_RANGE` long; without `from` and `to` it is the last 24 hours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from cloud.fleet.warehouses import warehouse_id
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from dockside.errors import InputError
from dockside.sync import EventKind

__all__ = ["DEFAULT_RANGE", "MAX_RANGE", "packing_report", "report_range"]

MAX_RANGE = timedelta(days=31)
DEFAULT_RANGE = timedelta(hours=24)
_MEASURE = {
    EventKind.LABEL_PRINTED.value: "labels",
    EventKind.LABEL_REPRINTED.value: "labels",
    EventKind.ORDER_PACKED.value: "parcels",
    EventKind.LABEL_FAILED.value: "errors",
    EventKind.JOB_UNKNOWN.value: "errors",
}
_MEASURES = ("labels", "parcels", "errors")


def report_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """[start, end) in UTC from what the caller asked (a time without a zone is UTC); InputError
    when it is empty, reversed or longer than MAX_RANGE."""
    end = _utc(end) if end is not None else utcnow()
    start = _utc(start) if start is not None else end - DEFAULT_RANGE
    if start >= end:
        raise InputError("from must be before to: give the report's start, then its end (ISO 8601, UTC)")
    if end - start > MAX_RANGE:
        raise InputError(f"a packing report covers at most {MAX_RANGE.days} days: ask for a shorter range")
    return start, end


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def packing_report(
    store: CloudStore,
    tenant_id: int,
    warehouses: Collection[str] | None,
    start: datetime,
    end: datetime,
    *,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """The report of the tenant's `warehouses` (None: all of them) over [start, end), or of the one
    `warehouse` asked for within them (NotFound when the tenant has no such warehouse)."""
    if warehouse is not None:
        warehouses = [warehouse] if warehouses is None or warehouse in warehouses else []
    events, wh, packers = schema.order_events, schema.warehouses, schema.packers
    query = (
        select(wh.c.code, events.c.kind, events.c.station, events.c.packer, events.c.occurred_at)
        .join(wh, wh.c.id == events.c.warehouse_id)
        .where(
            wh.c.tenant_id == tenant_id,
            events.c.tenant_id == tenant_id,
            events.c.source == "edge",
            events.c.occurred_at >= start,
            events.c.occurred_at < end,
            events.c.kind.in_(list(_MEASURE)),
        )
    )
    if warehouses is not None:
        query = query.where(wh.c.code.in_(sorted(warehouses)))
    counts: Counter[tuple[str, int | None, str, datetime, str]] = Counter()
    with store.read() as conn:
        if warehouse is not None:
            warehouse_id(conn, tenant_id, warehouse)
        for code, kind, station, packer, occurred_at in conn.execute(query):
            hour = occurred_at.replace(minute=0, second=0, microsecond=0)
            counts[(code, packer, station, hour, _MEASURE[kind])] += 1
        ids = sorted({key[1] for key in counts if key[1] is not None})
        names = {
            int(row.id): row.name
            for row in conn.execute(
                select(packers.c.id, packers.c.name).where(
                    packers.c.tenant_id == tenant_id, packers.c.id.in_(ids)
                )
            )
        }
    rows: dict[tuple[str, int | None, str, datetime], dict[str, Any]] = {}
    totals: dict[tuple[str, int | None], dict[str, Any]] = {}
    for (code, packer, station, hour, measure), count in sorted(counts.items(), key=_order):
        who = None if packer is None else {"id": packer, "name": names.get(packer, "")}
        row = rows.setdefault(
            (code, packer, station, hour),
            {"warehouse": code, "packer": who, "station": station, "hour": hour.isoformat(), **_zero()},
        )
        row[measure] += count
        total = totals.setdefault((code, packer), {"warehouse": code, "packer": who, **_zero()})
        total[measure] += count
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "rows": list(rows.values()),
        "packers": list(totals.values()),
    }


def _zero() -> dict[str, int]:
    return dict.fromkeys(_MEASURES, 0)


def _order(item: tuple[tuple[str, int | None, str, datetime, str], int]) -> tuple[Any, ...]:
    code, packer, station, hour, measure = item[0]
    # Packers by id, then events with no packer signed in; within each, by station and hour.
    return (code, packer is None, packer or 0, station, hour, measure)
