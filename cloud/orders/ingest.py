"""Orders: bulk ingest from an OMS, idempotent by order_ref.

Ingest validates each order on its own (one bad order does not sink the batch), then writes the
whole batch in one transaction with one block of revisions. Sending the same order again changes
nothing; changed content replaces the order while it is not yet packed and is refused after.

The OMS's carrier labels (an order's `parcels[].label`: ZPL, PDF or PNG) are checked here with
`dockside.labels.carrier_documents.check_carrier_label`, the check the agent runs again before
printing: an order with a label that is not one printable label is refused on its own, with the
parcel and what to send instead.

A change to where an order goes or what it holds (ship-to, lines, warehouse) is an amendment:
it goes on the order's timeline (`order_amended`, with who, before and after) in the same
transaction, and the caller audits each one (`IngestResult.amended`). Reading an order back,
with its events and timeline, is `cloud.orders.timeline`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ARRAY, Text, any_, bindparam, insert, select, update

from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, WriteTransaction, dumps
from dockside.errors import InputError
from dockside.http_errors import describe_field_errors
from dockside.labels.carrier_documents import check_carrier_label
from dockside.orders import Order, OrderState
from dockside.sync import ChangeKind

__all__ = [
    "AMENDED",
    "MAX_ORDERS_PER_CALL",
    "IngestResult",
    "OrderAmendment",
    "ingest_orders",
    "order_sync_body",
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


# The parts of an order whose change moves a parcel elsewhere or changes what is in it.
_AMENDED_FIELDS = ("warehouse", "ship_to", "lines")
AMENDED = "order_amended"


@dataclass(frozen=True, slots=True)
class OrderAmendment:
    """A re-ingested order whose ship-to, lines or warehouse changed: only the changed fields."""

    order_ref: str
    warehouse: str  # the order's warehouse code after the change
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(slots=True)
class IngestResult:
    """What happened to each order of a batch: accepted (by ref) or an error (by index)."""

    accepted: list[str]
    errors: list[dict[str, Any]]
    changed: int = 0
    amended: list[OrderAmendment] = field(default_factory=list)

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


def _refused_label(order: Order) -> InputError | None:
    """Why one of the order's carrier labels cannot be printed, naming its parcel; None if all can."""
    for number, parcel in enumerate(order.parcels, start=1):
        if parcel.label is None:
            continue
        try:
            check_carrier_label(parcel.label)
        except InputError as exc:
            return InputError(
                f"order {order.order_ref}, parcel {number}: {exc.message}; fix this order and send it again",
                code=exc.code,
            )
    return None


def ingest_orders(
    store: CloudStore,
    tenant_id: int,
    items: Sequence[Any],
    *,
    warehouses: Collection[str] | None = None,
    by: str = "",
    actor: str = "",
) -> IngestResult:
    """Validate and store a batch of orders (each item is the decoded JSON of one order).

    With `warehouses`, only orders for those warehouses are taken; the others are reported as for
    an unknown warehouse, since the caller's scope does not reach them. `by` (display name) and
    `actor` (unique id) name the caller on the timeline of each amended order.
    """
    result = IngestResult(accepted=[], errors=[])
    candidates: dict[str, _Candidate] = {}
    repeats: list[_Candidate] = []
    for index, item in enumerate(items):
        try:
            order = _ORDER.validate_python(item)
        except ValidationError as exc:
            message = describe_field_errors(
                exc.errors(include_url=False, include_input=False),
                fix="fix this order and send it again",
                whole="the order",
            )
            result.errors.append(_error(index, _echo_ref(item), "invalid_order", message))
            continue
        refused = _refused_label(order) if order.parcels else None
        if refused is not None:
            result.errors.append(_error(index, order.order_ref, refused.code, refused.message))
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
            outcome = _store_batch(tx, tenant_id, list(candidates.values()), result, warehouses, (by, actor))
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
    who: tuple[str, str],
) -> dict[str, dict[str, Any]]:
    """Write one batch; returns per order_ref {} when accepted or the error it got.

    `who` is (display name, actor id) of the caller, for the timeline of amended orders.
    """
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
    amended_at: dict[str, tuple[int, int]] = {}
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
            amendment = _amendment(ref, row.body, candidate.body)
            if amendment is not None:
                result.amended.append(amendment)
                amended_at[ref] = (int(row.id), wh_id)
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
    if result.amended:
        _record_amendments(tx, tenant_id, result.amended, amended_at, who)
    return outcome


def _amendment(order_ref: str, stored: str, incoming: str) -> OrderAmendment | None:
    """What changed in the fields that decide where a parcel goes and what it holds, if any."""
    old, new = json.loads(stored), json.loads(incoming)
    changed = [name for name in _AMENDED_FIELDS if old.get(name) != new.get(name)]
    if not changed:
        return None
    return OrderAmendment(
        order_ref,
        str(new.get("warehouse")),
        {name: old.get(name) for name in changed},
        {name: new.get(name) for name in changed},
    )


def _record_amendments(
    tx: WriteTransaction,
    tenant_id: int,
    amended: list[OrderAmendment],
    where: dict[str, tuple[int, int]],
    who: tuple[str, str],
) -> None:
    """Put each amendment on its order's timeline (`where`: order id and warehouse id by ref)."""
    by, actor = who
    tx.conn.execute(
        insert(schema.order_events),
        [
            {
                "event_id": f"cloud:{uuid.uuid4()}",
                "tenant_id": tenant_id,
                "warehouse_id": where[change.order_ref][1],
                "order_id": where[change.order_ref][0],
                "order_ref": change.order_ref,
                "kind": AMENDED,
                "source": "cloud",
                "station": "",
                "agent_id": None,
                "sequence": 0,
                "occurred_at": tx.now,
                "received_at": tx.now,
                "body": dumps({"by": by, "actor": actor, "before": change.before, "after": change.after}),
            }
            for change in amended
        ],
    )


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
