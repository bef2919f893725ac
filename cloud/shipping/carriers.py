"""Carrier accounts: where each carrier's tracking numbers come from, synced to every warehouse.

    POST /api/v1/carriers {"code", "name", "tracking": {"kind": ...}, "low_water", "block_size"}

The kinds (dockside.shipping.parcels.TrackingKind):

    oms     the OMS sends the carrier's label and number with the order; nothing to configure
    range   carrier-issued ranges (cloud.shipping.ranges) numbered by `format`, a
            dockside.shipping.tracking.NumberFormat (prefix, serial digits, check scheme, suffix)
    sscc    GS1 SSCC-18 for B2B cartons from the tenant's GS1 `company_prefix` and an `extension`
            digit; the carrier gets one range of every serial the prefix allows
    api     a carrier or shipping API buys each label (cloud.shipping.carrier_api): the
            `adapter`'s name and its `secret`, sealed at rest (cloud/storage/sealed_secrets.py)
            like webhook secrets, never synced, logged or shown

Every write is one CARRIER change for every warehouse of the tenant, whose body is
`{"code", "name", "tracking": {"kind", "scheme"}, "low_water"}`: for `range` the scheme is the
NumberFormat, for `sscc` `{"company_prefix", "extension", "format"}` (the NumberFormat that
gives exactly dockside.shipping.sscc.sscc18), for `api` `{"adapter"}`, for `oms` `{}`.

A carrier is replaced by POSTing it again, but how its numbers are made (kind and scheme) is
fixed once it has ranges: numbers already leased or printed would stop matching their carrier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, func, insert, select, update

from cloud.shipping.leases import DEFAULT_BLOCK_SIZE, free_numbers, lease_for_agents
from cloud.storage import schema
from cloud.storage.sealed_secrets import seal, unseal
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from dockside.errors import Conflict, NotFound
from dockside.shipping.check_digits import CheckScheme
from dockside.shipping.parcels import TrackingKind
from dockside.shipping.sscc import max_serial
from dockside.shipping.tracking import NumberFormat
from dockside.sync import ChangeKind

__all__ = [
    "DEFAULT_LOW_WATER",
    "ApiTracking",
    "CarrierCode",
    "CarrierIn",
    "OmsTracking",
    "RangeTracking",
    "SsccTracking",
    "api_secret",
    "carrier_sync_bodies",
    "get_carrier",
    "list_carriers",
    "put_carrier",
    "sscc_format",
]

DEFAULT_LOW_WATER = 500
MAX_LOW_WATER = 10_000_000
MAX_BLOCK_SIZE = 100_000
CarrierCode = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class OmsTracking(BaseModel):
    """The OMS sends each parcel's label and tracking number with the order."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["oms"]


class RangeTracking(BaseModel):
    """Numbers from carrier-issued ranges, built by `format`."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["range"]
    format: NumberFormat


class SsccTracking(BaseModel):
    """GS1 SSCC-18 numbers for cartons from the tenant's company prefix."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sscc"]
    company_prefix: Annotated[str, StringConstraints(pattern=r"^[0-9]{7,10}$")]
    extension: Annotated[int, Field(ge=0, le=9, strict=True)] = 0


class ApiTracking(BaseModel):
    """A carrier or shipping API buys each label; `secret` is its API key."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["api"]
    adapter: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]
    secret: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class CarrierIn(BaseModel):
    """A carrier account as an admin writes it."""

    model_config = ConfigDict(extra="forbid")

    code: CarrierCode
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
    tracking: Annotated[OmsTracking | RangeTracking | SsccTracking | ApiTracking, Field(discriminator="kind")]
    # Below this many free numbers (unleased plus leased and unused) an exception asks for more.
    low_water: Annotated[int, Field(ge=0, le=MAX_LOW_WATER, strict=True)] = DEFAULT_LOW_WATER
    # How many numbers an agent is leased at a time; it gets more when fewer than half are left.
    block_size: Annotated[int, Field(ge=1, le=MAX_BLOCK_SIZE, strict=True)] = DEFAULT_BLOCK_SIZE


def sscc_format(company_prefix: str, extension: int) -> NumberFormat:
    """The NumberFormat whose numbers are exactly the SSCC-18s of this prefix and extension digit."""
    prefix = f"{extension}{company_prefix}"
    return NumberFormat(scheme=CheckScheme.GS1_MOD10, prefix=prefix, digits=16 - len(company_prefix))


def _scheme(tracking: OmsTracking | RangeTracking | SsccTracking | ApiTracking) -> dict[str, Any]:
    if isinstance(tracking, RangeTracking):
        return tracking.format.model_dump(mode="json")
    if isinstance(tracking, SsccTracking):
        fmt = sscc_format(tracking.company_prefix, tracking.extension)
        return {
            "company_prefix": tracking.company_prefix,
            "extension": tracking.extension,
            "format": fmt.model_dump(mode="json"),
        }
    if isinstance(tracking, ApiTracking):
        return {"adapter": tracking.adapter}
    return {}


def _sync_body(code: str, name: str, tracking: dict[str, Any], low_water: int) -> str:
    return dumps(
        {
            "code": code,
            "name": name,
            "tracking": {"kind": tracking["kind"], "scheme": tracking["scheme"]},
            "low_water": low_water,
        }
    )


def _body(conn: Connection, row: Any) -> dict[str, Any]:
    tracking = json.loads(row.tracking)
    answer: dict[str, Any] = {
        "code": row.code,
        "name": row.name,
        "tracking": {"kind": tracking["kind"], "scheme": tracking["scheme"]},
        "low_water": int(row.low_water),
        "block_size": int(tracking["block_size"]),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if tracking["kind"] == TrackingKind.API.value:
        answer["secret_set"] = row.secret is not None  # the secret itself is never shown
    if tracking["kind"] in (TrackingKind.RANGE.value, TrackingKind.SSCC.value):
        answer["free_numbers"] = free_numbers(conn, int(row.tenant_id), row.code)
    return answer


def _has_ranges(conn: Connection, tenant_id: int, code: str) -> bool:
    ranges = schema.number_ranges
    query = select(func.count()).where(ranges.c.tenant_id == tenant_id, ranges.c.carrier == code)
    return int(conn.execute(query).scalar_one()) > 0


def put_carrier(store: CloudStore, tenant_id: int, carrier: CarrierIn) -> tuple[dict[str, Any], bool]:
    """Create or replace a carrier account; returns (its body, whether it is new).

    Conflict (409) when the kind or scheme would change under existing ranges.
    """
    table = schema.carriers
    tracking = {
        "kind": carrier.tracking.kind,
        "scheme": _scheme(carrier.tracking),
        "block_size": carrier.block_size,
    }
    secret = seal(carrier.tracking.secret) if isinstance(carrier.tracking, ApiTracking) else None
    with store.write() as tx:
        tx.lock_clock()
        row = tx.conn.execute(
            select(table).where(table.c.tenant_id == tenant_id, table.c.code == carrier.code)
        ).first()
        values = {
            "name": carrier.name,
            "tracking": dumps(tracking),
            "secret": secret,
            "low_water": carrier.low_water,
            "updated_at": tx.now,
        }
        if row is None:
            tx.conn.execute(
                insert(table).values(tenant_id=tenant_id, code=carrier.code, created_at=tx.now, **values)
            )
        else:
            before = json.loads(row.tracking)
            numbering = (before["kind"], before["scheme"])
            if numbering != (tracking["kind"], tracking["scheme"]) and _has_ranges(
                tx.conn, tenant_id, carrier.code
            ):
                raise Conflict(
                    f"carrier {carrier.code} already has number ranges made as {before['kind']} "
                    f"{dumps(before['scheme'])}: its kind and number format cannot change now; "
                    "create a new carrier code for the new numbers",
                    code="carrier_numbers_fixed",
                )
            tx.conn.execute(update(table).where(table.c.id == row.id).values(**values))
        if isinstance(carrier.tracking, SsccTracking) and not _has_ranges(tx.conn, tenant_id, carrier.code):
            # Every serial the prefix allows is the carrier's one range; serial 0 is left unused.
            fmt = sscc_format(carrier.tracking.company_prefix, carrier.tracking.extension)
            tx.conn.execute(
                insert(schema.number_ranges).values(
                    tenant_id=tenant_id,
                    carrier=carrier.code,
                    first=1,
                    last=max_serial(carrier.tracking.company_prefix),
                    next_free=1,
                    format=dumps(fmt.model_dump(mode="json")),
                    created_at=tx.now,
                )
            )
        body = _sync_body(carrier.code, carrier.name, tracking, carrier.low_water)
        tx.append_changes([ChangeRecord(tenant_id, None, ChangeKind.CARRIER.value, carrier.code, body)])
        if tracking["kind"] in (TrackingKind.RANGE.value, TrackingKind.SSCC.value):
            lease_for_agents(tx, tenant_id, carrier.code)
        saved = tx.conn.execute(
            select(table).where(table.c.tenant_id == tenant_id, table.c.code == carrier.code)
        ).one()
        return _body(tx.conn, saved), row is None


def get_carrier(store: CloudStore, tenant_id: int, code: str) -> dict[str, Any]:
    """One carrier account (without its secret); NotFound when there is none."""
    table = schema.carriers
    with store.read() as conn:
        row = conn.execute(select(table).where(table.c.tenant_id == tenant_id, table.c.code == code)).first()
        if row is None:
            raise NotFound(f"there is no carrier {code[:32]!r}: create it with POST /api/v1/carriers first")
        return _body(conn, row)


def list_carriers(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's carrier accounts by code (without secrets)."""
    table = schema.carriers
    with store.read() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant_id).order_by(table.c.code)).all()
        return [_body(conn, row) for row in rows]


def carrier_sync_bodies(conn: Connection, tenant_id: int) -> Iterator[tuple[str, str]]:
    """(key, body) of every carrier of the tenant as agents receive it, for a snapshot."""
    table = schema.carriers
    for row in conn.execute(select(table).where(table.c.tenant_id == tenant_id).order_by(table.c.code)):
        yield row.code, _sync_body(row.code, row.name, json.loads(row.tracking), int(row.low_water))


def api_secret(conn: Connection, tenant_id: int, code: str) -> tuple[str, str]:
    """(adapter name, API key in clear) of an `api` carrier, for its adapter only; never log or show it.

    NotFound when there is no such carrier; Conflict when it is not an `api` carrier.
    """
    table = schema.carriers
    row = conn.execute(
        select(table.c.tracking, table.c.secret).where(table.c.tenant_id == tenant_id, table.c.code == code)
    ).first()
    if row is None:
        raise NotFound(f"there is no carrier {code[:32]!r}: create it with POST /api/v1/carriers first")
    tracking = json.loads(row.tracking)
    if tracking["kind"] != TrackingKind.API.value or row.secret is None:
        raise Conflict(
            f"carrier {code} gets its tracking numbers as {tracking['kind']}, not from a carrier API",
            code="carrier_without_api",
        )
    return str(tracking["scheme"]["adapter"]), unseal(row.secret)
