"""Warehouses, their packing stations and the enrollment tokens that bring an agent into one.

A warehouse and each of its stations are synced entities: every write that changes one appends
its whole new state to the change log. Writing the same content again changes nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from sqlalchemy import Connection, insert, select, update

from cloud.access.credentials import ENROLLMENT_PREFIX, hash_secret, new_secret
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from dockside.errors import NotFound
from dockside.orders import Address
from dockside.stations import StationPrinter, StationPrinters, StationScale
from dockside.sync import ChangeKind

__all__ = [
    "STATION_MODES",
    "WEIGHT_UNITS",
    "EnrollmentTokenIn",
    "PrinterConfig",
    "ScaleConfig",
    "StationIn",
    "StationMode",
    "WarehouseIn",
    "WeightUnit",
    "create_enrollment_token",
    "get_warehouse",
    "list_stations",
    "list_warehouses",
    "put_station",
    "put_warehouse",
    "warehouse_body",
    "warehouse_id",
]

Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, StringConstraints(max_length=200)]
MAX_ENROLLMENT_TTL_S = 30 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


WeightUnit = Literal["kg", "lb"]
WEIGHT_UNITS: tuple[WeightUnit, ...] = ("kg", "lb")


class WarehouseIn(_Body):
    """A warehouse as an admin creates or replaces it.

    Its settings are what its stations follow: `weight_unit` is the unit the station page shows
    weights in ("kg", the default, or "lb"; the agent weighs in grams either way), and
    `item_check` says whether packers scan each order line's items before weighing (off unless
    turned on). `item_check` takes only true or false: a "yes" or a 1 is refused, not guessed."""

    code: Code
    name: Name = ""
    ship_from: Address | None = None
    weight_unit: WeightUnit = "kg"
    item_check: StrictBool = False


# The station's devices are checked by the definition the agent runs too (dockside.stations).
PrinterConfig = StationPrinter
ScaleConfig = StationScale


StationMode = Literal["pack", "dock"]
STATION_MODES: tuple[StationMode, ...] = ("pack", "dock")


class StationIn(_Body):
    """A packing station as an admin creates or replaces it.

    `mode` is what the station is for: "pack" (the default: scan an order, weigh, print its
    labels) or "dock" (scan parcels as they are handed over to the carrier)."""

    code: Code
    name: Name = ""
    mode: StationMode = "pack"
    printers: StationPrinters = []
    scale: StationScale | None = None


class EnrollmentTokenIn(_Body):
    """How long a new enrollment token stays usable."""

    ttl_s: Annotated[int, Field(ge=1, le=MAX_ENROLLMENT_TTL_S)] = 3600


def warehouse_body(
    code: str, name: str, ship_from: str | None, weight_unit: str = "kg", item_check: bool = False
) -> dict[str, Any]:
    """A warehouse's sync body: {"code", "name", "ship_from", "weight_unit", "item_check"}."""
    return {
        "code": code,
        "name": name,
        "ship_from": json.loads(ship_from) if ship_from else None,
        "weight_unit": weight_unit,
        "item_check": bool(item_check),
    }


# The columns a warehouse's body is made of (`warehouse_body`), in its argument order.
_BODY_COLUMNS = (
    schema.warehouses.c.code,
    schema.warehouses.c.name,
    schema.warehouses.c.ship_from,
    schema.warehouses.c.weight_unit,
    schema.warehouses.c.item_check,
)


def _body_of(row: Any) -> dict[str, Any]:
    """The sync body of a row holding the `_BODY_COLUMNS`."""
    return warehouse_body(row.code, row.name, row.ship_from, row.weight_unit, row.item_check)


def warehouse_id(conn: Connection, tenant_id: int, code: str) -> int:
    """The id of a warehouse of this tenant, or NotFound."""
    table = schema.warehouses
    found = conn.execute(
        select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.code == code)
    ).scalar()
    if found is None:
        raise NotFound(f"there is no warehouse {code!r}: create it with POST /api/v1/warehouses first")
    return int(found)


def put_warehouse(store: CloudStore, tenant_id: int, warehouse: WarehouseIn) -> tuple[dict[str, Any], bool]:
    """Create or replace a warehouse; returns its body and whether it was created."""
    table = schema.warehouses
    ship_from = warehouse.ship_from.model_dump_json() if warehouse.ship_from else None
    body = warehouse_body(
        warehouse.code, warehouse.name, ship_from, warehouse.weight_unit, warehouse.item_check
    )
    settings = {"weight_unit": warehouse.weight_unit, "item_check": warehouse.item_check}
    with store.write() as tx:
        row = tx.conn.execute(
            select(
                table.c.id, table.c.name, table.c.ship_from, table.c.weight_unit, table.c.item_check
            ).where(table.c.tenant_id == tenant_id, table.c.code == warehouse.code)
        ).first()
        same = (warehouse.name, ship_from, warehouse.weight_unit, warehouse.item_check)
        if row is not None and (row.name, row.ship_from, row.weight_unit, bool(row.item_check)) == same:
            return body, False
        if row is None:
            wh_id = tx.conn.execute(
                insert(table)
                .values(
                    tenant_id=tenant_id,
                    code=warehouse.code,
                    name=warehouse.name,
                    ship_from=ship_from,
                    **settings,
                    created_at=tx.now,
                    updated_at=tx.now,
                )
                .returning(table.c.id)
            ).scalar_one()
        else:
            wh_id = row.id
            tx.conn.execute(
                update(table)
                .where(table.c.id == wh_id)
                .values(name=warehouse.name, ship_from=ship_from, **settings, updated_at=tx.now)
            )
        tx.append_changes(
            [ChangeRecord(tenant_id, int(wh_id), ChangeKind.WAREHOUSE.value, warehouse.code, dumps(body))]
        )
    return body, row is None


def list_warehouses(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """Every warehouse of the tenant, by code."""
    table = schema.warehouses
    with store.read() as conn:
        rows = conn.execute(
            select(*_BODY_COLUMNS).where(table.c.tenant_id == tenant_id).order_by(table.c.code)
        ).all()
    return [_body_of(row) for row in rows]


def get_warehouse(store: CloudStore, tenant_id: int, code: str) -> dict[str, Any]:
    """One warehouse with its stations."""
    table = schema.warehouses
    with store.read() as conn:
        row = conn.execute(
            select(table.c.id, *_BODY_COLUMNS).where(table.c.tenant_id == tenant_id, table.c.code == code)
        ).first()
        if row is None:
            raise NotFound(f"there is no warehouse {code!r}: check the code or create it")
        body = _body_of(row)
        body["stations"] = _stations(conn, int(row.id))
    return body


def _stations(conn: Connection, wh_id: int) -> list[dict[str, Any]]:
    table = schema.stations
    rows = conn.execute(select(table.c.body).where(table.c.warehouse_id == wh_id).order_by(table.c.code))
    # A station saved before stations had a mode is a packing station.
    return [{"mode": "pack", **json.loads(body)} for (body,) in rows]


def list_stations(store: CloudStore, tenant_id: int, warehouse: str) -> list[dict[str, Any]]:
    """The stations of one warehouse, by code."""
    with store.read() as conn:
        return _stations(conn, warehouse_id(conn, tenant_id, warehouse))


def put_station(
    store: CloudStore, tenant_id: int, warehouse: str, station: StationIn
) -> tuple[dict[str, Any], bool]:
    """Create or replace a station of a warehouse; returns its body and whether it was created."""
    table = schema.stations
    body = station.model_dump(mode="json")
    text = dumps(body)
    with store.write() as tx:
        wh_id = warehouse_id(tx.conn, tenant_id, warehouse)
        row = tx.conn.execute(
            select(table.c.id, table.c.body).where(
                table.c.warehouse_id == wh_id, table.c.code == station.code
            )
        ).first()
        if row is not None and row.body == text:
            return body, False
        if row is None:
            tx.conn.execute(
                insert(table).values(
                    warehouse_id=wh_id, code=station.code, body=text, created_at=tx.now, updated_at=tx.now
                )
            )
        else:
            tx.conn.execute(update(table).where(table.c.id == row.id).values(body=text, updated_at=tx.now))
        tx.append_changes([ChangeRecord(tenant_id, wh_id, ChangeKind.STATION.value, station.code, text)])
    return body, row is None


def create_enrollment_token(
    store: CloudStore,
    tenant_id: int,
    warehouse: str,
    ttl_s: int,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A one-time token an agent trades for its identity in this warehouse; shown only once."""
    token = new_secret(ENROLLMENT_PREFIX)
    with store.write() as tx:
        issued = now or tx.now
        expires_at = issued + timedelta(seconds=ttl_s)
        wh_id = warehouse_id(tx.conn, tenant_id, warehouse)
        tx.conn.execute(
            insert(schema.enrollment_tokens).values(
                tenant_id=tenant_id,
                warehouse_id=wh_id,
                token_hash=hash_secret(token),
                created_at=issued,
                expires_at=expires_at,
            )
        )
    return {"token": token, "expires_at": expires_at.isoformat(), "warehouse": warehouse}
