"""Which parcels of an order need a label bought from an api carrier, and with which carrier and
service: the carrier the OMS named for the parcel, else the one the tenant's active ruleset
decides on the parcel's expected weight (see cloud.shipping.labels_bought).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from cloud.orders.bought_labels import bought_entries
from cloud.orders.parcels import ParcelState
from cloud.storage import schema
from dockside.errors import InputError
from dockside.orders import OrderState
from dockside.rules import CompiledRuleset, compile_ruleset

__all__ = [
    "OPEN_STATES",
    "RELABEL_STATES",
    "Want",
    "active_rules",
    "api_carriers",
    "labelled_by_order",
    "wanted_labels",
]

# An order's labels are bought while it is open at its warehouse.
OPEN_STATES = (OrderState.CREATED.value, OrderState.RELEASED.value)
# Past release a parcel whose label was voided (relabel) still gets a new one bought.
RELABEL_STATES = (OrderState.PACKED.value, OrderState.LABELLED.value, OrderState.EXCEPTION.value)


def api_carriers(conn: Connection, tenant_id: int) -> set[str]:
    """The codes of the tenant's carriers that sell labels over an API."""
    table = schema.carriers
    return {
        str(row.code)
        for row in conn.execute(select(table.c.code, table.c.tracking).where(table.c.tenant_id == tenant_id))
        if json.loads(row.tracking).get("kind") == "api"
    }


def active_rules(conn: Connection, tenant_id: int) -> CompiledRuleset | None:
    """The tenant's active ruleset, compiled (None when it has none or it does not compile)."""
    table = schema.ruleset_versions
    text = conn.execute(
        select(table.c.body).where(
            table.c.tenant_id == tenant_id, table.c.name == "default", table.c.active.is_(True)
        )
    ).scalar()
    if text is None:
        return None
    try:
        return compile_ruleset(json.loads(text))
    except InputError:
        return None


@dataclass(frozen=True, slots=True)
class Want:
    """One parcel's label to buy."""

    number: int
    carrier: str
    service: str
    weight_g: int
    dimensions_mm: tuple[int, int, int] | None


def labelled_by_order(oms: dict[str, Any], row: Any) -> bool:
    """Whether the order's parcel carries a label (the OMS's or one bought) that is still good: not
    the one an agent voided (the agent's void leaves it on the order, its row says voided)."""
    if not (oms.get("label") or oms.get("tracking_number")):
        return False
    voided = row is not None and row.state == ParcelState.VOIDED.value
    return not (voided and row.tracking_number == oms.get("tracking_number"))


def wanted_labels(
    order: dict[str, Any],
    rows: dict[int, Any],
    api: set[str],
    rules: CompiledRuleset | None,
    country: str,
    *,
    only_voided: bool = False,
) -> list[Want]:
    """The parcels of `order` whose labels the cloud should buy now (`only_voided`: only parcels
    whose label was voided, for an order past release)."""
    parcels = list(order.get("parcels") or [])
    count = max(1, len(parcels))
    wanted: list[Want] = []
    for number in range(1, count + 1):
        oms = parcels[number - 1] if number <= len(parcels) else {}
        row = rows.get(number)
        if labelled_by_order(oms, row):
            continue
        if only_voided and (row is None or row.state != ParcelState.VOIDED.value):
            continue
        if row is not None:
            entries = bought_entries(json.loads(row.documents))
            if row.state not in (ParcelState.EXPECTED.value, ParcelState.VOIDED.value):
                continue
            if any(entry.get("state") == "failed" for entry in entries):
                continue  # a person looks first (an exception says what happened)
        weight = oms.get("expected_weight_g")
        if weight is None and order.get("expected_weight_g") is not None:
            weight = max(1, int(order["expected_weight_g"]) // count)
        dims = oms.get("dimensions_mm")
        dimensions = (int(dims[0]), int(dims[1]), int(dims[2])) if dims else None
        named = str(oms.get("carrier") or "")
        if named:
            if named not in api or weight is None:
                continue
            service = str(oms.get("service") or order.get("service_level") or "")
            if rules is not None:
                decided = rules.decide(
                    order, int(weight), dimensions or (), parcel_number=number, parcel_count=count
                )
                service = str(oms.get("service") or decided.service)
            wanted.append(Want(number, named, service, int(weight), dimensions))
            continue
        if rules is None or weight is None:
            continue
        decision = rules.decide(
            order,
            int(weight),
            dimensions or (),
            parcel_number=number,
            parcel_count=count,
            ship_from_country=country,
        )
        if decision.carrier in api:
            wanted.append(
                Want(
                    number,
                    decision.carrier,
                    str(oms.get("service") or decision.service),
                    int(weight),
                    dimensions,
                )
            )
    return wanted
