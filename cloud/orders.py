"""Orders: bulk ingest from an OMS, idempotent by order_ref, and the order with its timeline.

Ingest validates each order on its own (one bad order does not sink the batch), then writes the
whole batch in one transaction with one block of revisions. Sending the same order again changes
nothing; changed content replaces the order while it is not yet packed and is refused after.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ARRAY, Text, any_, bindparam, select, update

from cloud import schema
from cloud.field_errors import describe_field_errors
from cloud.store import ChangeRecord, CloudStore, WriteTransaction
from dockside.errors import NotFound
from dockside.orders import Order, OrderState
from dockside.sync import ChangeKind

__all__ = [
    "MAX_ORDERS_PER_CALL",
    "IngestResult",
    "get_order",
    "ingest_orders",
    "order_sync_body",
    "order_timeline",
]

MAX_ORDERS_PER_CALL = 10_000
_LOOKUP_CHUNK = 2_000
_ORDER = TypeAdapter(Order)
# Until an order is packed its content may still change; after that the parcel is real.
_OPEN_STATES = frozenset({OrderState.CREATED.value, OrderState.RELEASED.value})
# Enum member lookups cost microseconds each: too much 10,000 times per call.
_CREATED = OrderState.CREATED.value


def order_sync_body(body: str, state: str) -> str:
    """An order's sync body: its canonical Order JSON plus `"state"`.

    The stored body is a JSON object serialised by pydantic (it ends with "}"), so the state is
    spliced in rather than parsing and re-serialising every order of a bulk write.
    """
    return f'{body[:-1]},"state":"{state}"}}'


@dataclass(slots=True)
class IngestResult:
    """What happened to each order of a batch: accepted (by ref) or an error (by index)."""

    accepted: list[str]
    errors: list[dict[str, Any]]
    changed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The API answer: {"accepted": [...], "errors": [...]}."""
        return {"accepted": self.accepted, "errors": self.errors}


@dataclass(slots=True)
class _Candidate:
    index: int
    order: Order
    body: str


def _echo_ref(item: Any) -> str | None:
    ref = item.get("order_ref") if isinstance(item, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 200 else None


def _error(index: int, order_ref: str | None, code: str, message: str) -> dict[str, Any]:
    return {"index": index, "order_ref": order_ref, "code": code, "message": message}


def ingest_orders(
    store: CloudStore, tenant_id: int, items: Sequence[Any], *, warehouses: Collection[str] | None = None
) -> IngestResult:
    """Validate and store a batch of orders (each item is the decoded JSON of one order).

    With `warehouses`, only orders for those warehouses are taken; the others are reported as for
    an unknown warehouse, since the caller's scope does not reach them.
    """
    result = IngestResult(accepted=[], errors=[])
    candidates: dict[str, _Candidate] = {}
    repeats: list[_Candidate] = []
    for index, item in enumerate(items):
        try:
            order = _ORDER.validate_python(item)
        except ValidationError as exc:
            message = describe_field_errors(
                exc.errors(include_url=False, include_input=False), what="this order", whole="the order"
            )
            result.errors.append(_error(index, _echo_ref(item), "invalid_order", message))
            continue
        candidate = _Candidate(index, order, order.model_dump_json())
        first = candidates.get(order.order_ref)
        if first is None:
            candidates[order.order_ref] = candidate
        elif first.body == candidate.body:
            repeats.append(candidate)
        else:
            result.errors.append(
                _error(
                    index,
                    order.order_ref,
                    "duplicate_order_ref",
                    f"order {order.order_ref} is in this batch twice with different content "
                    f"(index {first.index} and {index}): send each order once",
                )
            )
    if candidates:
        with store.write() as tx:
            outcome = _store_batch(tx, tenant_id, list(candidates.values()), result, warehouses)
        for repeat in repeats:
            # An identical second copy shares the fate of the first.
            fate = outcome[repeat.order.order_ref]
            if fate:
                result.errors.append({**fate, "index": repeat.index})
            else:
                result.accepted.append(repeat.order.order_ref)
    result.errors.sort(key=lambda error: error["index"])
    return result


def _store_batch(
    tx: WriteTransaction,
    tenant_id: int,
    candidates: list[_Candidate],
    result: IngestResult,
    scope: Collection[str] | None,
) -> dict[str, dict[str, Any]]:
    """Write one batch; returns per order_ref {} when accepted or the error it got."""
    tx.lock_clock()  # nothing else commits between our reads and our writes
    table = schema.orders
    warehouse_ids = {
        row.code: int(row.id)
        for row in tx.conn.execute(
            select(schema.warehouses.c.id, schema.warehouses.c.code).where(
                schema.warehouses.c.tenant_id == tenant_id
            )
        )
        if scope is None or row.code in scope
    }
    existing = _existing_orders(tx, tenant_id, [c.order.order_ref for c in candidates])

    outcome: dict[str, dict[str, Any]] = {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    records: list[ChangeRecord] = []
    kind = ChangeKind.ORDER.value
    scoped_ids = set(warehouse_ids.values())
    for candidate in candidates:
        ref = candidate.order.order_ref
        wh_id = warehouse_ids.get(candidate.order.warehouse)
        if wh_id is None:
            error = _error(
                candidate.index,
                ref,
                "unknown_warehouse",
                f"order {ref} is for warehouse {candidate.order.warehouse!r}, which does not exist: "
                "create the warehouse first or fix the order's warehouse",
            )
            result.errors.append(error)
            outcome[ref] = error
            continue
        row = existing.get(ref)
        if row is not None and scope is not None and int(row.warehouse_id) not in scoped_ids:
            # Another warehouse's order is invisible to this caller: it may neither see nor move it.
            error = _error(
                candidate.index,
                ref,
                "order_ref_taken",
                f"order reference {ref} is already used outside this token's warehouses: "
                "use another reference",
            )
            result.errors.append(error)
            outcome[ref] = error
            continue
        if row is not None and row.body == candidate.body:
            result.accepted.append(ref)
            outcome[ref] = {}
            continue
        if row is not None and row.state not in _OPEN_STATES:
            error = _error(
                candidate.index,
                ref,
                "order_locked",
                f"order {ref} is already {row.state}, so its content can no longer change: "
                "send it unchanged, or handle the difference in the warehouse",
            )
            result.errors.append(error)
            outcome[ref] = error
            continue
        if row is None:
            inserts.append(
                {
                    "tenant_id": tenant_id,
                    "warehouse_id": wh_id,
                    "order_ref": ref,
                    "state": _CREATED,
                    "body": candidate.body,
                    "created_at": tx.now,
                    "updated_at": tx.now,
                }
            )
        else:
            updates.append({"_id": row.id, "_body": candidate.body, "_warehouse_id": wh_id})
            if row.warehouse_id != wh_id:
                # The order moved: agents of the old warehouse must drop it.
                records.append(ChangeRecord(tenant_id, int(row.warehouse_id), kind, ref, deleted=True))
        state = _CREATED if row is None else row.state
        records.append(ChangeRecord(tenant_id, wh_id, kind, ref, order_sync_body(candidate.body, state)))
        result.accepted.append(ref)
        outcome[ref] = {}
    if inserts:
        schema.insert_rows(tx.conn, table, inserts)
    if updates:
        tx.conn.execute(
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values(body=bindparam("_body"), warehouse_id=bindparam("_warehouse_id"), updated_at=tx.now),
            updates,
        )
    tx.append_changes(records)
    result.changed = len(inserts) + len(updates)
    return outcome


_EXISTING_COLUMNS = (
    schema.orders.c.id,
    schema.orders.c.order_ref,
    schema.orders.c.state,
    schema.orders.c.body,
    schema.orders.c.warehouse_id,
)


def _existing_orders(tx: WriteTransaction, tenant_id: int, refs: list[str]) -> dict[str, Any]:
    """The batch's orders that are already stored, by order_ref.

    PostgreSQL takes the whole list as one array parameter (one round trip, one plan); SQLite,
    which has no arrays, is asked in chunks that stay under its bound-parameter limit.
    """
    table = schema.orders
    if tx.dialect == "postgresql":
        query = select(*_EXISTING_COLUMNS).where(
            table.c.tenant_id == tenant_id, table.c.order_ref == any_(bindparam("refs", type_=ARRAY(Text)))
        )
        return {row.order_ref: row for row in tx.conn.execute(query, {"refs": refs})}
    existing = {}
    for start in range(0, len(refs), _LOOKUP_CHUNK):
        rows = tx.conn.execute(
            select(*_EXISTING_COLUMNS).where(
                table.c.tenant_id == tenant_id, table.c.order_ref.in_(refs[start : start + _LOOKUP_CHUNK])
            )
        )
        existing.update({row.order_ref: row for row in rows})
    return existing


def get_order(
    store: CloudStore, tenant_id: int, order_ref: str, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """The order as ingested, with its state, timestamps and events in time order.

    With `warehouses`, an order of another warehouse is NotFound, exactly like a missing one.
    """
    table = schema.orders
    events = schema.order_events
    with store.read() as conn:
        query = select(table.c.id, table.c.state, table.c.body, table.c.created_at, table.c.updated_at).where(
            table.c.tenant_id == tenant_id, table.c.order_ref == order_ref
        )
        if warehouses is not None:
            query = query.join(schema.warehouses, schema.warehouses.c.id == table.c.warehouse_id).where(
                schema.warehouses.c.code.in_(sorted(warehouses))
            )
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(
                f"there is no order {order_ref[:64]!r}: check the reference or ingest the order first"
            )
        event_rows = conn.execute(
            select(events)
            .where(events.c.order_id == row.id)
            .order_by(events.c.occurred_at, events.c.received_at, events.c.id)
        ).mappings()
        timeline = [
            {
                "event_id": event["event_id"],
                "kind": event["kind"],
                "source": event["source"],
                "station": event["station"],
                "agent": event["agent_id"],
                "sequence": event["sequence"],
                "occurred_at": event["occurred_at"].isoformat(),
                "received_at": event["received_at"].isoformat(),
                "body": json.loads(event["body"]),
            }
            for event in event_rows
        ]
    order: dict[str, Any] = json.loads(row.body)
    order.update(
        state=row.state,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
        events=timeline,
    )
    return order


def order_timeline(
    store: CloudStore, tenant_id: int, order_ref: str, *, warehouses: Collection[str] | None = None
) -> dict[str, Any]:
    """Every cloud and edge event of an order in time order, each with who or what it came from.

    A source names the agent, station and printer for edge facts and the user for cloud writes;
    exceptions the order opened appear at the time they opened.
    """
    order = get_order(store, tenant_id, order_ref, warehouses=warehouses)
    entries: list[dict[str, Any]] = [
        {"at": order["created_at"], "kind": "order_created", "source": {"type": "oms"}, "detail": {}}
    ]
    for event in order["events"]:
        body = event["body"]
        if event["source"] == "edge":
            source = {
                "type": "agent",
                "agent": event["agent"],
                "station": event["station"] or None,
                "printer": body.get("printer") if isinstance(body, dict) else None,
            }
        else:
            source = {"type": "user", "user": body.get("by") if isinstance(body, dict) else None}
        entries.append({"at": event["occurred_at"], "kind": event["kind"], "source": source, "detail": body})
    exceptions = schema.order_exceptions
    with store.read() as conn:
        rows = conn.execute(
            select(exceptions.c.id, exceptions.c.kind, exceptions.c.opened_at, exceptions.c.status).where(
                exceptions.c.tenant_id == tenant_id, exceptions.c.order_ref == order_ref
            )
        ).all()
    for row in rows:
        entries.append(
            {
                "at": row.opened_at.isoformat(),
                "kind": "exception_opened",
                "source": {"type": "cloud"},
                "detail": {"exception_id": row.id, "exception_kind": row.kind, "status": row.status},
            }
        )
    entries.sort(key=lambda entry: entry["at"])
    return {"order_ref": order_ref, "state": order["state"], "timeline": entries}
