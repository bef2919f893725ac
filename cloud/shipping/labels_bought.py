"""Labels bought from a carrier API (carriers of tracking kind `api`): bought when the order reaches
its warehouse, voided when it is cancelled or its parcel voided, bought again when the packed weight
falls outside the ruleset's tolerance.

When is an order "released" to its warehouse? Dockside orders are packable as soon as they are
ingested for a warehouse (`created`; `released` is optional and rarely used), so the release a
carrier sees is the order existing for its warehouse in `created` or `released`: that is when its
labels are bought. Which carrier? The OMS may name it per parcel (`parcels[n].carrier`); when it
names an `api` carrier, that one. When it names none, the tenant's active ruleset decides on the
parcel's expected weight (its `expected_weight_g`, else the order's split evenly between its
parcels), as waves do before anything is weighed; when that decision is an `api` carrier, its
label is bought with the decided service. A parcel that already has a label or tracking number
from the OMS is never bought for.

Every network call happens outside any write transaction: read what to buy, call the API, then
write the result in a short transaction that checks the order again (cancelled meanwhile: the new
label is voided at once). A bought label goes on the order's parcel (`parcels[n].label`,
`tracking_number`, `carrier`, `service`), so agents receive it with the order like an OMS label,
and on the parcel row as a document entry {"kind": "shipping_label", "bought": {"label_id",
"adapter", "carrier", "tracking_number", "state", "attempts", "weight_g"}} (cloud.orders.parcels).

Errors are decided by type, never by their text: `retry_may_help` (CarrierApiUnavailable) is tried
again on the next round, up to MAX_ATTEMPTS, then an exception asks a person; a refusal
(CarrierApiRefused) opens an exception at once; `may_have_bought` never buys again (a label may
exist and be charged) and opens an exception telling a person to look in the carrier's account.

`run_labels_bought(store, stop)` is the background task (one per cloud process): every round it
buys for orders that need labels, voids labels of cancelled orders and voided parcels, and
relabels parcels whose packed weight was out of tolerance (the packer is told, by an exception,
to reprint that parcel).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from cloud.orders.exceptions import ExceptionKind, ExceptionStatus, open_exception
from cloud.orders.parcels import BOUGHT, VOID_PENDING, ParcelState
from cloud.orders.states import record_cloud_event
from cloud.shipping.carrier_api import CarrierApi, CarrierApiError, LabelRequest, PurchasedLabel
from cloud.shipping.carriers import api_secret
from cloud.shipping.shipstation import ADAPTER as SHIPSTATION
from cloud.shipping.shipstation import ShipStationApi
from cloud.shipping.voids import voided_sync_body
from cloud.storage import schema
from cloud.storage.periodic import run_every
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from dockside.errors import DocksideError, InputError
from dockside.orders import Address, Order, OrderState
from dockside.rules import CompiledRuleset, compile_ruleset
from dockside.sync import ChangeKind

__all__ = [
    "INTERVAL_S",
    "MAX_ATTEMPTS",
    "AdapterFactory",
    "buy_order_labels",
    "default_adapter",
    "relabel",
    "run_labels_bought",
    "run_round",
    "void_pending_labels",
]

log = logging.getLogger(__name__)

# How often the background task looks for labels to buy or void, and how often it tries one.
INTERVAL_S = 30.0
MAX_ATTEMPTS = 5
_OPEN = (OrderState.CREATED.value, OrderState.RELEASED.value)
# Past release a parcel whose label was voided (relabel) still gets a new one bought.
_RELABEL = (OrderState.PACKED.value, OrderState.LABELLED.value, OrderState.EXCEPTION.value)
_ROUND_ORDERS = 500

AdapterFactory = Callable[[str, str], CarrierApi]


def default_adapter(adapter: str, secret: str) -> CarrierApi:
    """The adapter a carrier account names, with its API key."""
    if adapter == SHIPSTATION:
        return ShipStationApi.from_env(secret)
    raise CarrierApiError(
        f"there is no carrier API adapter {adapter[:32]!r}: use {SHIPSTATION!r}", code="carrier_api_adapter"
    )


@contextmanager
def _adapter(factory: AdapterFactory, name: str, secret: str) -> Iterator[CarrierApi]:
    api = factory(name, secret)
    try:
        yield api
    finally:
        close = getattr(api, "close", None)
        if callable(close):
            close()


def _api_carriers(conn: Connection, tenant_id: int) -> set[str]:
    table = schema.carriers
    return {
        str(row.code)
        for row in conn.execute(select(table.c.code, table.c.tracking).where(table.c.tenant_id == tenant_id))
        if json.loads(row.tracking).get("kind") == "api"
    }


def _rules(conn: Connection, tenant_id: int) -> CompiledRuleset | None:
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
class _Want:
    """One parcel's label to buy."""

    number: int
    carrier: str
    service: str
    weight_g: int
    dimensions_mm: tuple[int, int, int] | None


def _bought_entries(documents: list[Any]) -> list[dict[str, Any]]:
    return [d[BOUGHT] for d in documents if isinstance(d, dict) and isinstance(d.get(BOUGHT), dict)]


def _labelled_by_order(oms: dict[str, Any], row: Any) -> bool:
    """Whether the order's parcel carries a label (the OMS's or one bought) that is still good: not
    the one an agent voided (the agent's void leaves it on the order, its row says voided)."""
    if not (oms.get("label") or oms.get("tracking_number")):
        return False
    voided = row is not None and row.state == ParcelState.VOIDED.value
    return not (voided and row.tracking_number == oms.get("tracking_number"))


def _wanted(
    order: dict[str, Any],
    rows: dict[int, Any],
    api: set[str],
    rules: CompiledRuleset | None,
    country: str,
    *,
    only_voided: bool = False,
) -> list[_Want]:
    """The parcels of `order` whose labels the cloud should buy now (`only_voided`: only parcels
    whose label was voided, for an order past release)."""
    parcels = list(order.get("parcels") or [])
    count = max(1, len(parcels))
    wanted: list[_Want] = []
    for number in range(1, count + 1):
        oms = parcels[number - 1] if number <= len(parcels) else {}
        row = rows.get(number)
        if _labelled_by_order(oms, row):
            continue
        if only_voided and (row is None or row.state != ParcelState.VOIDED.value):
            continue
        if row is not None:
            entries = _bought_entries(json.loads(row.documents))
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
            wanted.append(_Want(number, named, service, int(weight), dimensions))
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
                _Want(
                    number,
                    decision.carrier,
                    str(oms.get("service") or decision.service),
                    int(weight),
                    dimensions,
                )
            )
    return wanted


def buy_order_labels(
    store: CloudStore, tenant_id: int, order_ref: str, *, factory: AdapterFactory = default_adapter
) -> list[dict[str, Any]]:
    """Buy the labels an order's parcels need from their api carriers; what happened per parcel.

    Each outcome is {"parcel", "carrier", "outcome": "bought" | "retry" | "failed" | "voided", ...}.
    """
    orders, parcels = schema.orders, schema.parcels
    with store.read() as conn:
        row = conn.execute(
            select(orders.c.state, orders.c.body, schema.warehouses.c.ship_from)
            .join(schema.warehouses, schema.warehouses.c.id == orders.c.warehouse_id)
            .where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).first()
        if row is None or row.state not in (*_OPEN, *_RELABEL):
            return []
        api = _api_carriers(conn, tenant_id)
        if not api:
            return []
        order = json.loads(row.body)
        ship_from = Address.model_validate_json(row.ship_from) if row.ship_from else None
        stored = {
            int(p.number): p
            for p in conn.execute(
                select(parcels).where(parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref)
            )
        }
        wanted = _wanted(
            order,
            stored,
            api,
            _rules(conn, tenant_id),
            ship_from.country if ship_from else "",
            only_voided=row.state in _RELABEL,
        )
        secrets = {want.carrier: api_secret(conn, tenant_id, want.carrier) for want in wanted}
    outcomes: list[dict[str, Any]] = []
    for want in wanted:
        if ship_from is None:
            outcomes.append(
                _failed(
                    store,
                    tenant_id,
                    order_ref,
                    want,
                    "no_ship_from",
                    f"warehouse {order['warehouse']} has no ship_from address: a carrier label needs one; "
                    "set it with PUT /api/v1/warehouses/{code}",
                    final=True,
                )
            )
            continue
        request = LabelRequest(
            order_ref=order_ref,
            parcel=want.number,
            ship_to=Address.model_validate(order["ship_to"]),
            ship_from=ship_from,
            weight_g=want.weight_g,
            service=want.service,
            dimensions_mm=want.dimensions_mm,
        )
        adapter, secret = secrets[want.carrier]
        try:
            with _adapter(factory, adapter, secret) as carrier_api:
                bought = carrier_api.create_label(request)
        except CarrierApiError as exc:
            outcomes.append(_api_failed(store, tenant_id, order_ref, want, exc))
            continue
        outcomes.append(_store_bought(store, tenant_id, order_ref, want, adapter, bought))
    return outcomes


def _api_failed(
    store: CloudStore, tenant_id: int, order_ref: str, want: _Want, exc: CarrierApiError
) -> dict[str, Any]:
    if exc.may_have_bought:
        return _failed(
            store,
            tenant_id,
            order_ref,
            want,
            exc.code,
            f"{exc.message} (carrier {want.carrier}): a label may have been bought and charged; look for "
            f"parcel {want.number} of order {order_ref} in the carrier's account and void it or send it "
            "as the OMS's label; Dockside will not buy it again by itself",
            final=True,
        )
    return _failed(store, tenant_id, order_ref, want, exc.code, exc.message, final=not exc.retry_may_help)


def _parcel_row(conn: Connection, tenant_id: int, order_ref: str, number: int) -> Any:
    parcels = schema.parcels
    return conn.execute(
        select(parcels).where(
            parcels.c.tenant_id == tenant_id, parcels.c.order_ref == order_ref, parcels.c.number == number
        )
    ).first()


def _failed(
    store: CloudStore,
    tenant_id: int,
    order_ref: str,
    want: _Want,
    code: str,
    message: str,
    *,
    final: bool,
) -> dict[str, Any]:
    """Count a failed purchase on the parcel row; past MAX_ATTEMPTS (or `final`) it stops, with an
    exception for a person."""
    parcels, orders = schema.parcels, schema.orders
    with store.write() as tx:
        tx.lock_clock()
        order = tx.conn.execute(
            select(orders.c.warehouse_id).where(
                orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref
            )
        ).first()
        if order is None:
            return {"parcel": want.number, "carrier": want.carrier, "outcome": "failed", "code": code}
        row = _parcel_row(tx.conn, tenant_id, order_ref, want.number)
        documents: list[dict[str, Any]] = json.loads(row.documents) if row is not None else []
        entry = next(
            (d for d in documents if isinstance(d.get(BOUGHT), dict) and d[BOUGHT].get("state") == "trying"),
            None,
        )
        if entry is None:
            entry = {
                "kind": "shipping_label",
                BOUGHT: {"carrier": want.carrier, "state": "trying", "attempts": 0},
            }
            documents.append(entry)
        entry[BOUGHT]["attempts"] = int(entry[BOUGHT].get("attempts", 0)) + 1
        entry[BOUGHT]["error"] = code
        stop = final or entry[BOUGHT]["attempts"] >= MAX_ATTEMPTS
        if stop:
            entry[BOUGHT]["state"] = "failed"
        if row is None:
            tx.conn.execute(
                insert(parcels).values(
                    tenant_id=tenant_id,
                    order_ref=order_ref,
                    number=want.number,
                    carrier=want.carrier,
                    service=want.service[:64],
                    documents=dumps(documents),
                    state=ParcelState.EXPECTED.value,
                )
            )
        else:
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))
        if stop:
            open_exception(
                tx,
                tenant_id=tenant_id,
                warehouse_id=int(order.warehouse_id),
                order_ref=order_ref,
                kind=ExceptionKind.LABEL_PURCHASE_FAILED,
                message=(
                    f"the label of parcel {want.number} of order {order_ref} could not be bought from "
                    "carrier "
                    f"{want.carrier} after {entry[BOUGHT]['attempts']} attempt(s): {message}"
                )[:1000],
                detail={"parcel": want.number, "carrier": want.carrier, "code": code},
            )
    log.warning(
        "buying parcel %s of order %s from %s failed (%s)", want.number, order_ref, want.carrier, code
    )
    return {
        "parcel": want.number,
        "carrier": want.carrier,
        "outcome": "failed" if stop else "retry",
        "code": code,
    }


def _store_bought(
    store: CloudStore, tenant_id: int, order_ref: str, want: _Want, adapter: str, bought: PurchasedLabel
) -> dict[str, Any]:
    """Put a bought label on the order's parcel (agents receive it) and its row; if the order left
    its open states meanwhile, the label is marked for voiding instead."""
    orders, parcels = schema.orders, schema.parcels
    entry: dict[str, Any] = {
        "kind": "shipping_label",
        BOUGHT: {
            "label_id": bought.label_id,
            "adapter": adapter,
            "carrier": want.carrier,
            "tracking_number": bought.tracking_number,
            "service": want.service,
            "state": BOUGHT,
            "attempts": 0,
            "weight_g": want.weight_g,
        },
    }
    with store.write() as tx:
        tx.lock_clock()
        order = tx.conn.execute(
            select(
                orders.c.id,
                orders.c.tenant_id,
                orders.c.warehouse_id,
                orders.c.order_ref,
                orders.c.state,
                orders.c.body,
            ).where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).first()
        row = _parcel_row(tx.conn, tenant_id, order_ref, want.number)
        documents: list[dict[str, Any]] = json.loads(row.documents) if row is not None else []
        # A failed try before this one is done with.
        documents = [
            d
            for d in documents
            if not (isinstance(d.get(BOUGHT), dict) and d[BOUGHT].get("state") == "trying")
        ]
        body = json.loads(order.body) if order is not None else {}
        expected = list(body.get("parcels") or [])
        taken = want.number <= len(expected) and _labelled_by_order(expected[want.number - 1], row)
        still_open = (
            order is not None
            and not taken
            and (
                order.state in _OPEN
                or (order.state in _RELABEL and row is not None and row.state == ParcelState.VOIDED.value)
            )
        )
        if not still_open:
            entry[BOUGHT]["state"] = VOID_PENDING
        documents.append(entry)
        values: dict[str, Any] = {"documents": dumps(documents)}
        if still_open:
            values |= {
                "tracking_number": bought.tracking_number,
                "carrier": want.carrier,
                "service": want.service[:64],
            }
            if row is not None and row.state == ParcelState.VOIDED.value:
                values["state"] = ParcelState.EXPECTED.value
        if row is None:
            tx.conn.execute(
                insert(parcels).values(
                    tenant_id=tenant_id,
                    order_ref=order_ref,
                    number=want.number,
                    tracking_number=bought.tracking_number if still_open else "",
                    carrier=want.carrier,
                    service=want.service[:64],
                    documents=values["documents"],
                    state=ParcelState.EXPECTED.value,
                )
            )
        else:
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(**values))
        if not still_open or order is None:
            return {
                "parcel": want.number,
                "carrier": want.carrier,
                "outcome": "voided",
                "label_id": bought.label_id,
            }
        while len(expected) < want.number:
            expected.append({})
        expected[want.number - 1] = {
            **expected[want.number - 1],
            "label": bought.label.model_dump(mode="json"),
            "tracking_number": bought.tracking_number,
            "carrier": want.carrier,
            "service": want.service[:64],
        }
        text = Order.model_validate({**body, "parcels": expected}).model_dump_json()
        tx.conn.execute(update(orders).where(orders.c.id == order.id).values(body=text, updated_at=tx.now))
        record_cloud_event(
            tx,
            order,
            "label_bought",
            {
                "parcel": want.number,
                "carrier": want.carrier,
                "service": want.service,
                "tracking_number": bought.tracking_number,
                "label_id": bought.label_id,
                "weight_g": want.weight_g,
                "cost": bought.cost.model_dump(mode="json") if bought.cost else None,
            },
        )
        tx.append_changes(
            [
                ChangeRecord(
                    tenant_id,
                    int(order.warehouse_id),
                    ChangeKind.ORDER.value,
                    order_ref,
                    voided_sync_body(tx, tenant_id, order_ref, text, order.state),
                )
            ]
        )
    return {
        "parcel": want.number,
        "carrier": want.carrier,
        "outcome": "bought",
        "tracking_number": bought.tracking_number,
        "label_id": bought.label_id,
    }


def _mark_cancelled(store: CloudStore) -> None:
    """Mark the bought labels of cancelled orders for voiding."""
    parcels, orders = schema.parcels, schema.orders
    with store.write() as tx:
        rows = tx.conn.execute(
            select(parcels.c.id, parcels.c.documents)
            .join(
                orders,
                (orders.c.tenant_id == parcels.c.tenant_id) & (orders.c.order_ref == parcels.c.order_ref),
            )
            .where(
                orders.c.state == OrderState.CANCELLED.value, parcels.c.documents.like('%"state":"bought"%')
            )
        ).all()
        for row in rows:
            documents = json.loads(row.documents)
            for entry in _bought_entries(documents):
                if entry.get("state") == BOUGHT:
                    entry["state"] = VOID_PENDING
            tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))


def void_pending_labels(
    store: CloudStore,
    tenant_id: int | None = None,
    order_ref: str | None = None,
    *,
    factory: AdapterFactory = default_adapter,
) -> list[dict[str, Any]]:
    """Void at their APIs the bought labels marked `void_pending` (of one order, or all); outcomes
    {"order_ref", "parcel", "label_id", "outcome": "voided" | "declined" | "retry" | "failed"}."""
    parcels = schema.parcels
    query = select(parcels.c.tenant_id, parcels.c.order_ref, parcels.c.number, parcels.c.documents).where(
        parcels.c.documents.like(f'%"state":"{VOID_PENDING}"%')
    )
    if tenant_id is not None:
        query = query.where(parcels.c.tenant_id == tenant_id)
    if order_ref is not None:
        query = query.where(parcels.c.order_ref == order_ref)
    with store.read() as conn:
        todo: list[tuple[int, str, int, dict[str, Any], tuple[str, str] | None]] = []
        for row in conn.execute(query.limit(_ROUND_ORDERS)).all():
            for entry in _bought_entries(json.loads(row.documents)):
                if entry.get("state") != VOID_PENDING:
                    continue
                try:
                    secret: tuple[str, str] | None = api_secret(
                        conn, int(row.tenant_id), str(entry.get("carrier"))
                    )
                except DocksideError:
                    secret = None
                todo.append((int(row.tenant_id), row.order_ref, int(row.number), entry, secret))
    outcomes = []
    for tenant, ref, number, entry, secret in todo:
        label_id = str(entry.get("label_id"))
        outcome = "failed"
        if secret is not None:
            try:
                with _adapter(factory, *secret) as carrier_api:
                    outcome = "voided" if carrier_api.void_label(label_id) else "declined"
            except CarrierApiError as exc:
                outcome = "retry" if exc.retry_may_help else "failed"
        outcomes.append(_store_void(store, tenant, ref, number, label_id, outcome))
    return outcomes


def _store_void(
    store: CloudStore, tenant_id: int, order_ref: str, number: int, label_id: str, outcome: str
) -> dict[str, Any]:
    parcels, orders = schema.parcels, schema.orders
    with store.write() as tx:
        tx.lock_clock()
        row = _parcel_row(tx.conn, tenant_id, order_ref, number)
        if row is None:
            return {"order_ref": order_ref, "parcel": number, "label_id": label_id, "outcome": outcome}
        documents = json.loads(row.documents)
        for entry in _bought_entries(documents):
            if entry.get("label_id") != label_id or entry.get("state") != VOID_PENDING:
                continue
            entry["attempts"] = int(entry.get("attempts", 0)) + 1
            if outcome == "retry" and entry["attempts"] >= MAX_ATTEMPTS:
                outcome = "failed"
            entry["state"] = {"voided": "voided", "declined": "void_declined", "failed": "void_failed"}.get(
                outcome, VOID_PENDING
            )
            if outcome in ("declined", "failed"):
                warehouse = tx.conn.execute(
                    select(orders.c.warehouse_id).where(
                        orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref
                    )
                ).scalar()
                open_exception(
                    tx,
                    tenant_id=tenant_id,
                    warehouse_id=None if warehouse is None else int(warehouse),
                    order_ref=order_ref,
                    kind=ExceptionKind.LABEL_VOID_FAILED,
                    message=(
                        f"label {label_id} of parcel {number} of order {order_ref} "
                        f"(carrier {entry.get('carrier')}, "
                        f"{entry.get('tracking_number')}) could not be voided at the carrier's API "
                        f"({outcome}): "
                        "void it in the carrier's account so it is not charged"
                    ),
                    detail={"parcel": number, "label_id": label_id, "outcome": outcome},
                )
        tx.conn.execute(update(parcels).where(parcels.c.id == row.id).values(documents=dumps(documents)))
    return {"order_ref": order_ref, "parcel": number, "label_id": label_id, "outcome": outcome}


def _relabel_needed(store: CloudStore) -> list[tuple[int, int, str, int, int, int]]:
    """(exception id, tenant, order, parcel, packed weight, warehouse) of open weight exceptions
    whose parcel carries a bought label that was not bought for that weight."""
    exceptions, parcels = schema.order_exceptions, schema.parcels
    found = []
    with store.read() as conn:
        rows = conn.execute(
            select(
                exceptions.c.id,
                exceptions.c.tenant_id,
                exceptions.c.warehouse_id,
                exceptions.c.order_ref,
                exceptions.c.detail,
            )
            .where(
                exceptions.c.kind == ExceptionKind.WEIGHT_OUT_OF_TOLERANCE.value,
                exceptions.c.status == ExceptionStatus.OPEN.value,
            )
            .order_by(exceptions.c.id)
            .limit(_ROUND_ORDERS)
        ).all()
        for row in rows:
            detail = json.loads(row.detail) if isinstance(row.detail, str) else dict(row.detail or {})
            number, weight = int(detail.get("parcel") or 1), detail.get("weight_g")
            if not isinstance(weight, int) or weight <= 0 or row.order_ref is None:
                continue
            parcel = conn.execute(
                select(parcels.c.documents).where(
                    parcels.c.tenant_id == row.tenant_id,
                    parcels.c.order_ref == row.order_ref,
                    parcels.c.number == number,
                )
            ).scalar()
            entries = _bought_entries(json.loads(parcel)) if parcel else []
            live = [e for e in entries if e.get("state") == BOUGHT]
            if (
                live
                and all(e.get("relabel_for") != int(row.id) for e in entries)
                and live[-1].get("weight_g") != weight
            ):
                found.append(
                    (
                        int(row.id),
                        int(row.tenant_id),
                        str(row.order_ref),
                        number,
                        weight,
                        int(row.warehouse_id),
                    )
                )
    return found


def relabel(
    store: CloudStore,
    exception_id: int,
    tenant_id: int,
    order_ref: str,
    number: int,
    weight_g: int,
    *,
    factory: AdapterFactory = default_adapter,
) -> dict[str, Any]:
    """Buy parcel `number`'s label again for its packed weight, void the old one, and tell the
    packer (an exception) to reprint that parcel."""
    orders, parcels = schema.orders, schema.parcels
    with store.read() as conn:
        order = conn.execute(
            select(orders.c.state, orders.c.body, orders.c.warehouse_id, schema.warehouses.c.ship_from)
            .join(schema.warehouses, schema.warehouses.c.id == orders.c.warehouse_id)
            .where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).first()
        row = _parcel_row(conn, tenant_id, order_ref, number)
        if order is None or row is None or order.ship_from is None:
            return {"parcel": number, "outcome": "skipped"}
        live = [e for e in _bought_entries(json.loads(row.documents)) if e.get("state") == BOUGHT]
        if not live:
            return {"parcel": number, "outcome": "skipped"}
        old = live[-1]
        secret = api_secret(conn, tenant_id, str(old["carrier"]))
    body = json.loads(order.body)
    request = LabelRequest(
        order_ref=order_ref,
        parcel=number,
        ship_to=Address.model_validate(body["ship_to"]),
        ship_from=Address.model_validate_json(order.ship_from),
        weight_g=weight_g,
        service=str(old.get("service") or row.service),
        dimensions_mm=tuple(json.loads(row.dimensions_mm)) if row.dimensions_mm else None,
    )
    try:
        with _adapter(factory, *secret) as carrier_api:
            bought = carrier_api.create_label(request)
    except CarrierApiError as exc:
        if exc.retry_may_help and not exc.may_have_bought:
            return {"parcel": number, "outcome": "retry", "code": exc.code}
        bought = None
        problem = exc.message
    with store.write() as tx:
        tx.lock_clock()
        current = _parcel_row(tx.conn, tenant_id, order_ref, number)
        documents = json.loads(current.documents)
        for entry in _bought_entries(documents):
            if entry.get("label_id") == old.get("label_id"):
                entry["relabel_for"] = exception_id
                if bought is not None:
                    entry["state"] = VOID_PENDING
        values: dict[str, Any] = {}
        if bought is not None:
            documents.append(
                {
                    "kind": "shipping_label",
                    BOUGHT: {
                        "label_id": bought.label_id,
                        "adapter": secret[0],
                        "carrier": old["carrier"],
                        "tracking_number": bought.tracking_number,
                        "service": str(old.get("service") or row.service),
                        "state": BOUGHT,
                        "attempts": 0,
                        "weight_g": weight_g,
                        "relabel_for": exception_id,
                    },
                }
            )
            values = {"tracking_number": bought.tracking_number, "weight_g": weight_g}
        tx.conn.execute(
            update(parcels).where(parcels.c.id == current.id).values(documents=dumps(documents), **values)
        )
        order_row = tx.conn.execute(
            select(
                orders.c.id,
                orders.c.tenant_id,
                orders.c.warehouse_id,
                orders.c.order_ref,
                orders.c.state,
                orders.c.body,
            ).where(orders.c.tenant_id == tenant_id, orders.c.order_ref == order_ref)
        ).one()
        if bought is None:
            message = (
                f"parcel {number} of order {order_ref} weighed {weight_g} g, outside the ruleset's "
                "tolerance, "
                f"and its label could not be bought again: {problem}; check the carrier's account, then "
                "relabel the parcel by hand"
            )
        else:
            body = json.loads(order_row.body)
            expected = list(body.get("parcels") or [])
            while len(expected) < number:
                expected.append({})
            expected[number - 1] = {
                **expected[number - 1],
                "label": bought.label.model_dump(mode="json"),
                "tracking_number": bought.tracking_number,
            }
            text = Order.model_validate({**body, "parcels": expected}).model_dump_json()
            tx.conn.execute(
                update(orders).where(orders.c.id == order_row.id).values(body=text, updated_at=tx.now)
            )
            record_cloud_event(
                tx,
                order_row,
                "label_bought",
                {
                    "parcel": number,
                    "tracking_number": bought.tracking_number,
                    "label_id": bought.label_id,
                    "weight_g": weight_g,
                    "replaces": old.get("label_id"),
                },
            )
            tx.append_changes(
                [
                    ChangeRecord(
                        tenant_id,
                        int(order_row.warehouse_id),
                        ChangeKind.ORDER.value,
                        order_ref,
                        voided_sync_body(tx, tenant_id, order_ref, text, order_row.state),
                    )
                ]
            )
            message = (
                f"parcel {number} of order {order_ref} weighed {weight_g} g, outside the ruleset's "
                "tolerance: its "
                f"label was bought again for that weight ({bought.tracking_number}, the old "
                f"{old.get('tracking_number')} is voided); reprint parcel {number}'s label and put it "
                "on the parcel"
            )
        open_exception(
            tx,
            tenant_id=tenant_id,
            warehouse_id=int(order_row.warehouse_id),
            order_ref=order_ref,
            kind=ExceptionKind.LABEL_REPRINT_NEEDED,
            message=message[:1000],
            detail={
                "parcel": number,
                "weight_g": weight_g,
                "old_tracking_number": old.get("tracking_number"),
                "tracking_number": bought.tracking_number if bought else None,
            },
        )
    return {"parcel": number, "outcome": "relabelled" if bought else "failed"}


def _orders_to_buy(store: CloudStore) -> Iterator[tuple[int, str]]:
    """(tenant, order) of the orders that may need a label bought, for tenants with api carriers:
    every open order whose parcels are not all labelled by the OMS (read a page at a time), and
    every order past release with a voided parcel."""
    orders, carriers, parcels = schema.orders, schema.carriers, schema.parcels
    with store.read() as conn:
        tenants = sorted(
            {
                int(row.tenant_id)
                for row in conn.execute(select(carriers.c.tenant_id, carriers.c.tracking))
                if json.loads(row.tracking).get("kind") == "api"
            }
        )
    for tenant in tenants:
        last = 0
        while True:
            with store.read() as conn:
                page = conn.execute(
                    select(orders.c.id, orders.c.order_ref, orders.c.body)
                    .where(
                        orders.c.tenant_id == tenant,
                        orders.c.id > last,
                        or_(*(orders.c.state == state for state in _OPEN)),
                    )
                    .order_by(orders.c.id)
                    .limit(_ROUND_ORDERS)
                ).all()
            for row in page:
                expected = json.loads(row.body).get("parcels") or [{}]
                if not all(p.get("label") or p.get("tracking_number") for p in expected):
                    yield tenant, str(row.order_ref)
            if len(page) < _ROUND_ORDERS:
                break
            last = int(page[-1].id)
        with store.read() as conn:
            voided = (
                conn.execute(
                    select(orders.c.order_ref)
                    .join(
                        parcels,
                        (parcels.c.tenant_id == orders.c.tenant_id)
                        & (parcels.c.order_ref == orders.c.order_ref),
                    )
                    .where(
                        orders.c.tenant_id == tenant,
                        or_(*(orders.c.state == state for state in (*_OPEN, *_RELABEL))),
                        parcels.c.state == ParcelState.VOIDED.value,
                    )
                    .distinct()
                )
                .scalars()
                .all()
            )
        yield from ((tenant, str(ref)) for ref in voided)


def run_round(store: CloudStore, *, factory: AdapterFactory = default_adapter) -> dict[str, int]:
    """One round of the background task: buy, void, relabel; counts of what it did."""
    counts = {"bought": 0, "voided": 0, "relabelled": 0, "failed": 0}
    for tenant, ref in _orders_to_buy(store):
        for outcome in buy_order_labels(store, tenant, ref, factory=factory):
            if outcome["outcome"] in counts:
                counts[outcome["outcome"]] += 1
    _mark_cancelled(store)
    for outcome in void_pending_labels(store, factory=factory):
        if outcome["outcome"] == "voided":
            counts["voided"] += 1
    for exception_id, tenant, ref, number, weight, _warehouse in _relabel_needed(store):
        done = relabel(store, exception_id, tenant, ref, number, weight, factory=factory)
        if done["outcome"] in counts:
            counts[done["outcome"]] += 1
    # Labels the relabels replaced.
    for outcome in void_pending_labels(store, factory=factory):
        if outcome["outcome"] == "voided":
            counts["voided"] += 1
    return counts


async def run_labels_bought(
    store: CloudStore, stop: asyncio.Event, *, interval_s: float = INTERVAL_S
) -> None:
    """Run `run_round` every `interval_s` until `stop` is set (one per cloud process)."""
    await run_every(run_round, store, stop, interval_s=interval_s, what="the carrier label round")
