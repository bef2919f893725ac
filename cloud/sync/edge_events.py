"""Edge events arriving from agents: stored once by event id, with their effect on the order.

Delivery is at-least-once, so the same event may arrive any number of times; the event id, unique
within the tenant, makes the second arrival an acknowledgement without a second effect. An id
already stored for a different event (another agent's, or a broken agent's reuse) is rejected
with a reason, never acknowledged: only what is stored is acked. Another tenant's ids are no
concern: they cannot collide. Each batch is one transaction: the events, the order states they
move and the order changes that tell the warehouse's agents about those states commit together or
not at all.

The rules are never evaluated inside that transaction: a packed parcel's weight tolerance is
decided first, on a read, so however long a rule takes no other writer waits for it.

This module runs a batch and moves its orders' states. Each event is first checked
(cloud.sync.incoming_events: malformed facts reject it with the reason); the shipping facts it
carries (parcels, tracking numbers, leases, handover) are applied by cloud.sync.shipping_events,
and the facts that contradict the cloud's view open exceptions (cloud.sync.event_conflicts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from cloud.decisions.rulesets import active_ruleset_text
from cloud.fleet.agents import AgentIdentity
from cloud.orders.ingest import order_sync_body
from cloud.orders.parcels import ParcelLedger
from cloud.storage import schema
from cloud.storage.gc_pause import paused_gc
from cloud.storage.store import ChangeRecord, CloudStore, WriteTransaction, dumps
from cloud.sync.event_conflicts import EventConflicts, Tolerance
from cloud.sync.incoming_events import CheckedEvent, IncomingEvent, Rejection, Verdict, check_event
from cloud.sync.shipping_events import (
    PARCEL_EVENTS,
    parcel_effect,
    record_leases_and_numbers,
    shipped_payload,
)
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import InputError
from dockside.orders import OrderState
from dockside.rules import CompiledRuleset, compile_ruleset
from dockside.sync import ChangeKind, EventKind

__all__ = ["MAX_EVENTS_PER_BATCH", "EventOutcome", "apply_events"]

MAX_EVENTS_PER_BATCH = 5_000
_LOOKUP_CHUNK = 2_000
log = logging.getLogger(__name__)

# The states an event moves an order out of, by the state it moves it to. Any other state keeps
# the order where it is and the event is still recorded; conflicts open exceptions (see
# EventConflicts). A printed document packs the order; the last expected parcel's label (or the
# packer's close) labels it; a handover ships the order once every parcel it did not void is
# shipped (it must be labelled).
_BEFORE_PACKED = frozenset({OrderState.CREATED.value, OrderState.RELEASED.value})
_BEFORE_LABELLED = _BEFORE_PACKED | {OrderState.PACKED.value}
_MOVES_FROM: dict[str, frozenset[str]] = {
    OrderState.PACKED.value: _BEFORE_PACKED,
    OrderState.LABELLED.value: _BEFORE_LABELLED,
    OrderState.SHIPPED.value: frozenset({OrderState.LABELLED.value}),
}
# The state an event of an order kind (not a parcel's) moves its order to.
_EFFECTS: dict[str, str] = {EventKind.ORDER_PACKED.value: OrderState.PACKED.value}


@dataclass(slots=True)
class EventOutcome:
    """Which events are safe to forget (acked) and which never will be accepted (rejected)."""

    acked: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (event_id, code, message)


def apply_events(store: CloudStore, agent: AgentIdentity, events: Sequence[IncomingEvent]) -> EventOutcome:
    """Record a batch of an agent's events and apply their effects; idempotent by event id."""
    verdicts: dict[str, Verdict] = {}
    fresh: dict[str, CheckedEvent] = {}
    for event in events:
        checked = check_event(event)
        if isinstance(checked, Rejection):
            verdicts.setdefault(event.event_id[:64], checked)
        elif event.event_id not in fresh:
            fresh[event.event_id] = checked
    if fresh:
        tolerances = _decide_tolerances(store, agent, list(fresh.values()))
        with paused_gc():
            verdicts.update(_apply_with_retry(store, agent, list(fresh.values()), tolerances))
    outcome = EventOutcome()
    for event_id, verdict in verdicts.items():
        if verdict is None:
            outcome.acked.append(event_id)
        else:
            outcome.rejected.append((event_id, verdict.code, verdict.message))
    return outcome


# Compiled active rulesets by their stored text: a batch of events should not parse every
# condition again, and the text (not a version number) also tells two databases apart in one process.
_compiled_rulesets: dict[str, CompiledRuleset | None] = {}


def _active_rules(conn: Connection, tenant_id: int) -> CompiledRuleset | None:
    text = active_ruleset_text(conn, tenant_id)
    if text is None:
        return None
    if text in _compiled_rulesets:
        return _compiled_rulesets[text]
    compiled: CompiledRuleset | None
    try:
        compiled = compile_ruleset(json.loads(text))
    except InputError as exc:
        # Published before today's limits: its tolerances cannot be checked, but the events
        # must still go in (refusing the batch would stop the agent's outbox for good).
        log.warning(
            "the active ruleset of tenant %s no longer compiles, so packed weights are not checked "
            "against it: %s",
            tenant_id,
            exc.message,
        )
        compiled = None
    if len(_compiled_rulesets) > 64:
        _compiled_rulesets.clear()
    _compiled_rulesets[text] = compiled
    return compiled


def _decide_tolerances(
    store: CloudStore, agent: AgentIdentity, checked: list[CheckedEvent]
) -> dict[str, Tolerance]:
    """Each packed parcel's expected weight and tolerance under the tenant's active ruleset.

    Read first, decided after the read ends, so no transaction is open while rules run. The write
    that follows may see a newer order (re-ingested meanwhile): the agent packed with an order
    copy at least as old, so the decision stands for the parcel as packed.
    """
    packed = {c.event.event_id: c for c in checked if c.packed_weight() is not None}
    if not packed:
        return {}
    orders_table = schema.orders
    with store.read() as conn:
        rules = _active_rules(conn, agent.tenant_id)
        if rules is None or not rules.can_set("weight_tolerance_g"):
            return {}
        refs = sorted({c.event.order_ref for c in packed.values()})
        bodies: dict[str, str] = {}
        for start in range(0, len(refs), _LOOKUP_CHUNK):
            rows = conn.execute(
                select(orders_table.c.order_ref, orders_table.c.body).where(
                    orders_table.c.tenant_id == agent.tenant_id,
                    orders_table.c.warehouse_id == agent.warehouse_id,
                    schema.one_of(
                        orders_table.c.order_ref, refs[start : start + _LOOKUP_CHUNK], conn.dialect
                    ),
                )
            )
            bodies.update({row.order_ref: row.body for row in rows})
    decided: dict[str, Tolerance] = {}
    for event_id, item in packed.items():
        text = bodies.get(item.event.order_ref)
        weight = item.packed_weight()
        if text is None or weight is None:
            continue
        order = json.loads(text)
        expected = order.get("expected_weight_g")
        if expected is None:
            continue
        tolerance = rules.decide(order, weight).weight_tolerance_g
        if tolerance is not None:
            decided[event_id] = Tolerance(int(expected), tolerance)
    return decided


def _apply_with_retry(
    store: CloudStore, agent: AgentIdentity, checked: list[CheckedEvent], tolerances: dict[str, Tolerance]
) -> dict[str, Verdict]:
    attempts = 3
    for attempt in range(attempts):
        try:
            with store.write() as tx:
                return _apply(tx, agent, checked, tolerances)
        except (IntegrityError, psycopg.errors.IntegrityError):
            # The same events, or another agent's label of the same new parcel, arrived on another
            # connection and committed first (PostgreSQL; insert_rows' COPY raises psycopg's own
            # error): run again, and they are acknowledged as already seen or update that parcel.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _stored_verdicts(
    tx: WriteTransaction, agent: AgentIdentity, checked: list[CheckedEvent]
) -> dict[str, Verdict]:
    """For each event whose id the tenant already holds: acked when the stored event is this one
    (a redelivery, also from the same PC enrolled again), rejected when it is another event."""
    events_table = schema.order_events
    by_id = {c.event.event_id: c for c in checked}
    ids = list(by_id)
    verdicts: dict[str, Verdict] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        rows = tx.conn.execute(
            select(
                events_table.c.event_id,
                events_table.c.warehouse_id,
                events_table.c.kind,
                events_table.c.order_ref,
                events_table.c.station,
                events_table.c.occurred_at,
                events_table.c.body,
            ).where(
                events_table.c.tenant_id == agent.tenant_id,
                schema.one_of(events_table.c.event_id, ids[start : start + _LOOKUP_CHUNK], tx.conn.dialect),
            )
        )
        for row in rows:
            item = by_id[row.event_id]
            event = item.event
            same = (
                int(row.warehouse_id) == agent.warehouse_id
                and row.kind == event.kind
                and (row.order_ref or "") == event.order_ref
                and row.station == event.station
                and round(row.occurred_at.timestamp() * 1000) == event.occurred_at_ms
                and json.loads(row.body) == item.body
            )
            verdicts[row.event_id] = (
                None
                if same
                else Rejection(
                    "event_id_taken",
                    f"event id {row.event_id} is already stored for another event of this tenant: "
                    "the agent must give every event an id of its own; this event is kept for a person",
                )
            )
    return verdicts


def _apply(
    tx: WriteTransaction, agent: AgentIdentity, checked: list[CheckedEvent], tolerances: dict[str, Tolerance]
) -> dict[str, Verdict]:
    """Insert new events and move their orders; returns each event id's verdict (None: stored)."""
    events_table = schema.order_events
    orders_table = schema.orders
    stored = _stored_verdicts(tx, agent, checked)
    already = set(stored)
    refs = sorted(
        {c.event.order_ref for c in checked if c.event.order_ref and c.event.event_id not in already}
    )
    orders: dict[str, Any] = {}
    for start in range(0, len(refs), _LOOKUP_CHUNK):
        rows = tx.conn.execute(
            select(
                orders_table.c.id,
                orders_table.c.order_ref,
                orders_table.c.warehouse_id,
                orders_table.c.state,
                orders_table.c.body,
            ).where(
                orders_table.c.tenant_id == agent.tenant_id,
                schema.one_of(orders_table.c.order_ref, refs[start : start + _LOOKUP_CHUNK], tx.conn.dialect),
            )
        )
        orders.update({row.order_ref: row for row in rows})

    decided: dict[str, Verdict] = dict(stored)
    conflicts = EventConflicts(tx, agent, tolerances)
    ledger = ParcelLedger(tx, agent.tenant_id)
    ledger.load(
        c.event.order_ref for c in checked if c.event.kind in PARCEL_EVENTS and c.event.order_ref in orders
    )
    expected: dict[int, int] = {}
    restored: set[str] = set()
    states: dict[int, str] = {}
    moved: dict[int, str] = {}
    inserts: list[dict[str, Any]] = []
    # A pack's events share their instant: one datetime each, so it is converted for the
    # database once (insert_rows converts each distinct value once).
    instants: dict[int, datetime] = {}

    def occurred_at(ms: int) -> datetime:
        found = instants.get(ms)
        if found is None:
            found = instants[ms] = datetime.fromtimestamp(ms / 1000, UTC)
        return found

    # Events of one order take effect in the agent's outbox order.
    for item in sorted(
        (c for c in checked if c.event.event_id not in already), key=lambda c: c.event.sequence
    ):
        event = item.event
        order = orders.get(event.order_ref) if event.order_ref else None
        if event.order_ref and order is None:
            decided[event.event_id] = Rejection(
                "unknown_order",
                f"there is no order {event.order_ref!r}: the event cannot be applied; keep it for a person",
            )
            continue
        if order is not None and int(order.warehouse_id) != agent.warehouse_id:
            decided[event.event_id] = Rejection(
                "order_not_in_warehouse",
                f"order {event.order_ref!r} belongs to another warehouse than {agent.warehouse!r}",
            )
            continue
        rejection = record_leases_and_numbers(tx, agent, item, restored)
        if rejection is not None:
            decided[event.event_id] = rejection
            continue
        if order is not None:
            state = states.setdefault(int(order.id), order.state)
            conflicts.check(item, order, state)
            target = _EFFECTS.get(event.kind)
            if event.kind in PARCEL_EVENTS:
                target = parcel_effect(tx, agent, ledger, item, order, agent.warehouse, expected, occurred_at)
            if target is not None and state in _MOVES_FROM[target]:
                states[int(order.id)] = moved[int(order.id)] = target
        inserts.append(
            {
                "event_id": event.event_id,
                "tenant_id": agent.tenant_id,
                "warehouse_id": agent.warehouse_id,
                "order_id": int(order.id) if order is not None else None,
                "order_ref": event.order_ref or None,
                "kind": event.kind,
                "source": "edge",
                "station": event.station,
                "agent_id": agent.agent_id,
                "sequence": event.sequence,
                "occurred_at": occurred_at(event.occurred_at_ms),
                "received_at": tx.now,
                "body": dumps(item.body),
                "packer": item.packer,
            }
        )
        if order is None and event.kind == EventKind.JOB_UNKNOWN.value:
            conflicts.check(item, None, "")
        decided[event.event_id] = None
    if inserts:
        schema.insert_rows(tx.conn, events_table, inserts)
    ledger.flush()
    conflicts.open_all()
    if moved:
        tx.conn.execute(
            update(orders_table)
            .where(orders_table.c.id == bindparam("_id"))
            .values(state=bindparam("_state"), updated_at=tx.now),
            [{"_id": order_id, "_state": state} for order_id, state in moved.items()],
        )
        # The state is part of the order's sync body, so its agents hear of the move.
        by_id = {int(order.id): order for order in orders.values()}
        shipped_at = tx.now.isoformat()
        emit(
            tx,
            agent.tenant_id,
            WebhookEvent.ORDER_SHIPPED,
            [
                shipped_payload(ledger, by_id[order_id].order_ref, agent.warehouse, shipped_at)
                for order_id, state in sorted(moved.items())
                if state == OrderState.SHIPPED.value
            ],
        )
        emit(
            tx,
            agent.tenant_id,
            WebhookEvent.ORDER_STATE_CHANGED,
            [
                {
                    "order_ref": by_id[order_id].order_ref,
                    "warehouse": agent.warehouse,
                    "from": by_id[order_id].state,
                    "to": state,
                    "by": f"agent:{agent.agent_id}",
                }
                for order_id, state in sorted(moved.items())
            ],
        )
        tx.append_changes(
            [
                ChangeRecord(
                    agent.tenant_id,
                    int(by_id[order_id].warehouse_id),
                    ChangeKind.ORDER.value,
                    by_id[order_id].order_ref,
                    _sync_body(by_id[order_id].body, state, shipped_at),
                )
                for order_id, state in sorted(moved.items())
            ]
        )
    return decided


def _sync_body(body: str, state: str, shipped_at: str) -> str:
    text = order_sync_body(body, state)
    # As cloud.orders.states: agents purge a shipped order's personal data some days after this.
    return f'{text[:-1]},"shipped_at":"{shipped_at}"}}' if state == OrderState.SHIPPED.value else text
