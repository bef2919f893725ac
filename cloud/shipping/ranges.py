"""Number ranges: the blocks of tracking numbers a carrier issued to the tenant.

    POST /api/v1/carriers/{code}/ranges {"first": 1000, "last": 1999}
    POST /api/v1/carriers/{code}/ranges {"first": "RR000010003US", "last": "RR000019995US"}

`first` and `last` are serials (the part before the check character) or whole tracking numbers
as the carrier printed them, whose check characters must be right under the carrier's format
(dockside.shipping.tracking). A range that is backwards, too wide for the format, has a wrong
check character, or overlaps another range of the same carrier (a duplicate included) is
refused with nothing changed. A new range is leased out to the agents at once (cloud.shipping.leases).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, insert, select

from cloud.shipping.leases import check_low_water, free_numbers, lease_for_agents
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.errors import Conflict, InputError, NotFound
from dockside.shipping.tracking import NumberFormat, format_number, parse_number, validate_range

__all__ = ["RangeIn", "add_range", "list_ranges"]

_Serial = Annotated[int, Field(ge=0, le=10**18, strict=True)]
_Number = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class RangeIn(BaseModel):
    """A carrier-issued range: first and last serial, or first and last tracking number."""

    model_config = ConfigDict(extra="forbid")

    first: _Serial | _Number
    last: _Serial | _Number


def _serial(fmt: NumberFormat, value: int | str, which: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return parse_number(fmt, value)
    except InputError as exc:
        raise InputError(f"{which}: {exc.message}", code="invalid_tracking_number") from None


def _body(conn: Connection, row: Any) -> dict[str, Any]:
    fmt = NumberFormat.model_validate(json.loads(row.format))
    return {
        "id": int(row.id),
        "carrier": row.carrier,
        "first": int(row.first),
        "last": int(row.last),
        "first_number": format_number(fmt, int(row.first)),
        "last_number": format_number(fmt, int(row.last)),
        "size": int(row.last) - int(row.first) + 1,
        "unleased": max(0, int(row.last) - int(row.next_free) + 1),
        "created_at": row.created_at.isoformat(),
    }


def _number_format(conn: Connection, tenant_id: int, carrier: str) -> NumberFormat:
    table = schema.carriers
    row = conn.execute(
        select(table.c.tracking).where(table.c.tenant_id == tenant_id, table.c.code == carrier)
    ).first()
    if row is None:
        raise NotFound(f"there is no carrier {carrier[:32]!r}: create it with POST /api/v1/carriers first")
    tracking = json.loads(row.tracking)
    if tracking["kind"] != "range":
        raise Conflict(
            f"carrier {carrier} gets its tracking numbers as {tracking['kind']}, not from ranges: "
            "number ranges are for carriers with tracking kind 'range'",
            code="carrier_without_ranges",
        )
    return NumberFormat.model_validate(tracking["scheme"])


def add_range(store: CloudStore, tenant_id: int, carrier: str, given: RangeIn) -> dict[str, Any]:
    """Add a range to a `range` carrier and lease it out; returns the range with its numbers."""
    with store.write() as tx:
        tx.lock_clock()
        fmt = _number_format(tx.conn, tenant_id, carrier)
        first = _serial(fmt, given.first, "first")
        last = _serial(fmt, given.last, "last")
        validate_range(fmt, first, last)
        ranges = schema.number_ranges
        clash = tx.conn.execute(
            select(ranges.c.id, ranges.c.first, ranges.c.last)
            .where(
                ranges.c.tenant_id == tenant_id,
                ranges.c.carrier == carrier,
                ranges.c.first <= last,
                ranges.c.last >= first,
            )
            .order_by(ranges.c.first)
        ).first()
        if clash is not None:
            same = int(clash.first) == first and int(clash.last) == last
            raise Conflict(
                f"serials {first}..{last} {'are' if same else 'overlap'} range {clash.id} "
                f"({clash.first}..{clash.last}) of carrier {carrier}: a number is issued once; "
                + ("this range is already added" if same else "add only the serials not yet covered"),
                code="range_overlap",
            )
        range_id = int(
            tx.conn.execute(
                insert(ranges)
                .values(
                    tenant_id=tenant_id,
                    carrier=carrier,
                    first=first,
                    last=last,
                    next_free=first,
                    format=dumps(fmt.model_dump(mode="json")),
                    created_at=tx.now,
                )
                .returning(ranges.c.id)
            ).scalar_one()
        )
        lease_for_agents(tx, tenant_id, carrier)
        check_low_water(tx, tenant_id, carrier)
        row = tx.conn.execute(select(ranges).where(ranges.c.id == range_id)).one()
        return {**_body(tx.conn, row), "free_numbers": free_numbers(tx.conn, tenant_id, carrier)}


def list_ranges(store: CloudStore, tenant_id: int, carrier: str) -> list[dict[str, Any]]:
    """A carrier's ranges in serial order."""
    ranges = schema.number_ranges
    with store.read() as conn:
        carriers = schema.carriers
        if (
            conn.execute(
                select(carriers.c.id).where(carriers.c.tenant_id == tenant_id, carriers.c.code == carrier)
            ).first()
            is None
        ):
            raise NotFound(
                f"there is no carrier {carrier[:32]!r}: create it with POST /api/v1/carriers first"
            )
        rows = conn.execute(
            select(ranges)
            .where(ranges.c.tenant_id == tenant_id, ranges.c.carrier == carrier)
            .order_by(ranges.c.first)
        ).all()
        return [_body(conn, row) for row in rows]
