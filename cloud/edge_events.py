"""Edge events arriving from agents: stored once by event id, with their effect on the order.

Delivery is at-least-once, so the same event may arrive any number of times; the unique event id
makes the second arrival an acknowledgement without a second effect. Each batch is one
transaction: the events, the order states they move and the order changes that tell the
warehouse's agents about those states commit together or not at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from cloud import schema
from cloud.agents import AgentIdentity
from cloud.exceptions_center import ExceptionKind, open_exception
from cloud.gc_pause import paused_gc
from cloud.orders import order_sync_body
from cloud.rulesets import active_ruleset
from cloud.store import ChangeRecord, CloudStore, WriteTransaction, dumps
from cloud.webhooks import WebhookEvent, emit
from dockside.orders import OrderState
from dockside.rules import CompiledRuleset, compile_ruleset
from dockside.sync import ChangeKind, EventKind

__all__ = ["MAX_EVENTS_PER_BATCH", "EventOutcome", "IncomingEvent", "apply_events"]

MAX_EVENTS_PER_BATCH = 5_000
MAX_EVENT_BODY_BYTES = 64 * 1024
_LOOKUP_CHUNK = 2_000
_ACKED = "acked"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
# Year 2000 to year 3000 in Unix milliseconds: anything else is a broken agent clock or field.
_MIN_MS, _MAX_MS = 946_684_800_000, 32_503_680_000_000

_NEEDS_ORDER = frozenset(
    {
        EventKind.ORDER_PACKED,
        EventKind.LABEL_PRINTED,
        EventKind.LABEL_FAILED,
        EventKind.LABEL_REPRINTED,
        EventKind.WEIGHT_CAPTURED,
    }
)
# The states an event moves an order out of, and where to. Any other state keeps the order where
# it is and the event is still recorded; conflicts open exceptions (see _conflicts).
_EFFECTS: dict[str, tuple[frozenset[str], str]] = {
    EventKind.ORDER_PACKED.value: (
        frozenset({OrderState.CREATED.value, OrderState.RELEASED.value}),
        OrderState.PACKED.value,
    ),
    EventKind.LABEL_PRINTED.value: (
        frozenset({OrderState.CREATED.value, OrderState.RELEASED.value, OrderState.PACKED.value}),
        OrderState.LABELLED.value,
    ),
}


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """An edge event as it came off the wire, not yet trusted."""

    event_id: str
    kind: str
    order_ref: str
    station: str
    occurred_at_ms: int
    body: bytes
    sequence: int


@dataclass(slots=True)
class EventOutcome:
    """Which events are safe to forget (acked) and which never will be accepted (rejected)."""

    acked: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (event_id, code, message)


@dataclass(slots=True)
class _Checked:
    event: IncomingEvent
    body: dict[str, Any]


def _check(event: IncomingEvent) -> _Checked | tuple[str, str]:
    """The event with its decoded body, or (code, message) saying why it can never be accepted."""
    if not _ID.match(event.event_id):
        return "invalid_event", "event_id must be 1 to 64 letters, digits, '.', '_', ':' or '-' (a UUID)"
    try:
        kind = EventKind(event.kind)
    except ValueError:
        return "unknown_kind", f"unknown event kind {event.kind[:40]!r}: use one of {', '.join(EventKind)}"
    if len(event.order_ref) > 64 or not _PRINTABLE.match(event.order_ref):
        return "invalid_event", "order_ref must be at most 64 printable characters"
    if kind in _NEEDS_ORDER and not event.order_ref:
        return "invalid_event", f"a {kind.value} event needs the order_ref it is about"
    if len(event.station) > 32 or not _PRINTABLE.match(event.station):
        return "invalid_event", "station must be at most 32 printable characters"
    if not _MIN_MS <= event.occurred_at_ms <= _MAX_MS:
        return (
            "invalid_event",
            f"occurred_at_ms {event.occurred_at_ms} is not a plausible time: check the agent's clock",
        )
    if len(event.body) > MAX_EVENT_BODY_BYTES:
        return "invalid_body", f"the event body is larger than {MAX_EVENT_BODY_BYTES // 1024} KiB"
    if not event.body:
        return _Checked(event, {})
    try:
        body = json.loads(event.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "invalid_body", "the event body is not UTF-8 JSON: the agent must send a JSON object"
    if not isinstance(body, dict):
        return "invalid_body", "the event body must be a JSON object"
    return _Checked(event, body)


def apply_events(store: CloudStore, agent: AgentIdentity, events: Sequence[IncomingEvent]) -> EventOutcome:
    """Record a batch of an agent's events and apply their effects; idempotent by event id."""
    verdicts: dict[str, tuple[str, str]] = {}
    fresh: dict[str, _Checked] = {}
    for event in events:
        checked = _check(event)
        if isinstance(checked, tuple):
            verdicts.setdefault(event.event_id[:64], checked)
        elif event.event_id not in fresh:
            fresh[event.event_id] = checked
    if fresh:
        with paused_gc():
            verdicts.update(_apply_with_retry(store, agent, list(fresh.values())))
    outcome = EventOutcome()
    for event_id, (code, message) in verdicts.items():
        if code == _ACKED:
            outcome.acked.append(event_id)
        else:
            outcome.rejected.append((event_id, code, message))
    return outcome


def _apply_with_retry(
    store: CloudStore, agent: AgentIdentity, checked: list[_Checked]
) -> dict[str, tuple[str, str]]:
    attempts = 3
    for attempt in range(attempts):
        try:
            with store.write() as tx:
                return _apply(tx, agent, checked)
        except IntegrityError:
            # The same events arrived on another connection and committed first (PostgreSQL):
            # run again, and they are acknowledged as already seen.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _apply(tx: WriteTransaction, agent: AgentIdentity, checked: list[_Checked]) -> dict[str, tuple[str, str]]:
    """Insert new events and move their orders; returns per event id (_ACKED, "") or (code, message)."""
    events_table = schema.order_events
    orders_table = schema.orders
    ids = [c.event.event_id for c in checked]
    already: set[str] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        rows = tx.conn.execute(
            select(events_table.c.event_id).where(
                schema.one_of(events_table.c.event_id, ids[start : start + _LOOKUP_CHUNK], tx.conn.dialect)
            )
        )
        already.update(event_id for (event_id,) in rows)
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

    decided: dict[str, tuple[str, str]] = {event_id: (_ACKED, "") for event_id in already}
    conflicts = _Conflicts(tx, agent)
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
            decided[event.event_id] = (
                "unknown_order",
                f"there is no order {event.order_ref!r}: the event cannot be applied; keep it for a person",
            )
            continue
        if order is not None and int(order.warehouse_id) != agent.warehouse_id:
            decided[event.event_id] = (
                "order_not_in_warehouse",
                f"order {event.order_ref!r} belongs to another warehouse than {agent.warehouse!r}",
            )
            continue
        if order is not None:
            state = states.setdefault(int(order.id), order.state)
            conflicts.check(item, order, state)
            effect = _EFFECTS.get(event.kind)
            if effect is not None and state in effect[0]:
                states[int(order.id)] = moved[int(order.id)] = effect[1]
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
            }
        )
        if order is None and event.kind == EventKind.JOB_UNKNOWN.value:
            conflicts.check(item, None, "")
        decided[event.event_id] = (_ACKED, "")
    if inserts:
        schema.insert_rows(tx.conn, events_table, inserts)
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
                    order_sync_body(by_id[order_id].body, state),
                )
                for order_id, state in sorted(moved.items())
            ]
        )
    return decided


class _Conflicts:
    """Edge facts that contradict the cloud's view, each opening an exception for a person."""

    def __init__(self, tx: WriteTransaction, agent: AgentIdentity) -> None:
        self._tx = tx
        self._agent = agent
        self._ruleset: CompiledRuleset | None = None
        self._found: list[dict[str, Any]] = []

    def _rules(self) -> CompiledRuleset:
        # Looked up once per batch, and only when a packed parcel needs its tolerance.
        if self._ruleset is None:
            active = active_ruleset(self._tx.conn, self._agent.tenant_id)
            self._ruleset = compile_ruleset(active or {})
        return self._ruleset

    def _add(
        self, item: _Checked, order: Any, kind: ExceptionKind, message: str, detail: dict[str, Any]
    ) -> None:
        self._found.append(
            {
                "tenant_id": self._agent.tenant_id,
                "warehouse_id": int(order.warehouse_id) if order is not None else self._agent.warehouse_id,
                "order_ref": item.event.order_ref or None,
                "kind": kind,
                "message": message,
                "detail": {"station": item.event.station, "agent": self._agent.agent_id, **detail},
                "event_id": item.event.event_id,
            }
        )

    def check(self, item: _Checked, order: Any, state: str) -> None:
        """Note the exceptions `item` opens against `order` (in `state` before the event)."""
        event, ref = item.event, item.event.order_ref
        if event.kind == EventKind.JOB_UNKNOWN.value:
            self._add(
                item,
                order,
                ExceptionKind.JOB_UNKNOWN,
                f"the label of order {ref} may or may not have printed at station {event.station}: "
                "check the printer's output, then reprint or resolve",
                {"job_id": item.body.get("job_id"), "printer": item.body.get("printer")},
            )
        if event.kind != EventKind.ORDER_PACKED.value or order is None:
            return
        if state == OrderState.CANCELLED.value:
            self._add(
                item,
                order,
                ExceptionKind.PACKED_AFTER_CANCEL,
                f"order {ref} was packed at station {event.station} after it was cancelled: "
                "stop the parcel before it ships",
                {"job_id": item.body.get("job_id")},
            )
        weight = item.body.get("weight_g")
        if not isinstance(weight, int) or isinstance(weight, bool):
            return
        body = json.loads(order.body)
        expected = body.get("expected_weight_g")
        if expected is None:
            return
        tolerance = self._rules().decide(body, weight).weight_tolerance_g
        if tolerance is not None and abs(weight - int(expected)) > tolerance:
            self._add(
                item,
                order,
                ExceptionKind.WEIGHT_OUT_OF_TOLERANCE,
                f"order {ref} weighed {weight} g, expected {expected} g ± {tolerance} g: "
                "check the parcel's contents",
                {"weight_g": weight, "expected_weight_g": expected, "tolerance_g": tolerance},
            )

    def open_all(self) -> None:
        """Open every exception found, in the batch's transaction."""
        for found in self._found:
            open_exception(self._tx, **found)
