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

Job events carry the facts of their parcel (number, document, tracking number, dimensions,
SSCC), checked before anything is stored: malformed facts reject the event with the reason. A
printed shipping or GS1 carton label makes its parcel labelled (cloud.orders.parcels), and the
order becomes `labelled` once every parcel it expects is (or the packer closed it: ORDER_CLOSED),
`packed` before that. Number events (NUMBER_USED, NUMBER_VOIDED) go to the shipping capability's
record of tracking numbers, in the same transaction.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from cloud.decisions.rulesets import active_ruleset_text
from cloud.fleet.agents import AgentIdentity
from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.orders.ingest import order_sync_body
from cloud.orders.parcels import (
    LABEL_DOCUMENTS,
    LEASE_RETIRED,
    PARCEL_HANDED_OVER,
    ParcelLedger,
    check_event_body,
    expected_parcel_count,
)
from cloud.shipping.leases import record_number_event, retire_restored
from cloud.shipping.voids import void_number
from cloud.storage import schema
from cloud.storage.gc_pause import paused_gc
from cloud.storage.store import ChangeRecord, CloudStore, WriteTransaction, dumps
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.errors import InputError
from dockside.orders import OrderState
from dockside.rules import CompiledRuleset, compile_ruleset
from dockside.shipping.parcels import ParcelFacts
from dockside.sync import ChangeKind, EventKind

__all__ = [
    "MAX_EVENTS_PER_BATCH",
    "EventOutcome",
    "IncomingEvent",
    "Rejection",
    "apply_events",
]

MAX_EVENTS_PER_BATCH = 5_000
MAX_EVENT_BODY_BYTES = 64 * 1024
_LOOKUP_CHUNK = 2_000
log = logging.getLogger(__name__)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
# Year 2000 to year 3000 in Unix milliseconds: anything else is a broken agent clock or field.
_MIN_MS, _MAX_MS = 946_684_800_000, 32_503_680_000_000

_NEEDS_ORDER = frozenset(
    {
        EventKind.ORDER_PACKED.value,
        EventKind.LABEL_PRINTED.value,
        EventKind.LABEL_FAILED.value,
        EventKind.LABEL_REPRINTED.value,
        EventKind.WEIGHT_CAPTURED.value,
        EventKind.ORDER_CLOSED.value,
        EventKind.PARCEL_VOIDED.value,
        PARCEL_HANDED_OVER,
    }
)
# Kinds newer than some agents' dockside.sync, accepted by their wire names.
_NEWER_KINDS = frozenset({LEASE_RETIRED, PARCEL_HANDED_OVER})
# The states an event moves an order out of, and where to. Any other state keeps the order where
# it is and the event is still recorded; conflicts open exceptions (see _conflicts). A printed
# document packs the order; the last expected parcel's label (or the packer's close) labels it.
_BEFORE_PACKED = frozenset({OrderState.CREATED.value, OrderState.RELEASED.value})
_BEFORE_LABELLED = _BEFORE_PACKED | {OrderState.PACKED.value}
_PACKED = (_BEFORE_PACKED, OrderState.PACKED.value)
_LABELLED = (_BEFORE_LABELLED, OrderState.LABELLED.value)
_EFFECTS: dict[str, tuple[frozenset[str], str]] = {EventKind.ORDER_PACKED.value: _PACKED}
_NUMBER_EVENTS = frozenset({EventKind.NUMBER_USED.value, EventKind.NUMBER_VOIDED.value})
# The events whose order's parcels the batch reads and changes.
_PARCEL_EVENTS = frozenset(
    {
        EventKind.LABEL_PRINTED.value,
        EventKind.LABEL_REPRINTED.value,
        EventKind.PARCEL_VOIDED.value,
        EventKind.ORDER_CLOSED.value,
        PARCEL_HANDED_OVER,
    }
)
# A handover ships the order once every parcel it did not void is shipped (it must be labelled).
_SHIPPED = (frozenset({OrderState.LABELLED.value}), OrderState.SHIPPED.value)


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


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event can never be accepted: its code (the wire's) and a message for a person."""

    code: str
    message: str


# Per event id: None when the event is stored (acked), else why it never will be.
Verdict = Rejection | None


@dataclass(slots=True)
class EventOutcome:
    """Which events are safe to forget (acked) and which never will be accepted (rejected)."""

    acked: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (event_id, code, message)


@dataclass(slots=True)
class _Checked:
    event: IncomingEvent
    body: dict[str, Any]
    facts: ParcelFacts | None = None  # a job event's parcel facts, checked

    def packed_weight(self) -> int | None:
        """The weight an order_packed event reports, when it reports one."""
        weight = self.body.get("weight_g")
        if self.event.kind != EventKind.ORDER_PACKED.value or not self.event.order_ref:
            return None
        return weight if isinstance(weight, int) and not isinstance(weight, bool) else None


@dataclass(frozen=True, slots=True)
class _Tolerance:
    """What the rules said a packed parcel may weigh, decided before the write transaction."""

    expected_g: int
    tolerance_g: int


def _check(event: IncomingEvent) -> _Checked | Rejection:
    """The event with its decoded body, or why it can never be accepted."""
    if not _ID.match(event.event_id):
        return Rejection(
            "invalid_event", "event_id must be 1 to 64 letters, digits, '.', '_', ':' or '-' (a UUID)"
        )
    kind = event.kind
    if kind not in _NEWER_KINDS:
        try:
            kind = EventKind(event.kind).value
        except ValueError:
            known = ", ".join(sorted({*EventKind, *_NEWER_KINDS}))
            return Rejection("unknown_kind", f"unknown event kind {event.kind[:40]!r}: use one of {known}")
    if len(event.order_ref) > 64 or not _PRINTABLE.match(event.order_ref):
        return Rejection("invalid_event", "order_ref must be at most 64 printable characters")
    if kind in _NEEDS_ORDER and not event.order_ref:
        return Rejection("invalid_event", f"a {kind} event needs the order_ref it is about")
    if len(event.station) > 32 or not _PRINTABLE.match(event.station):
        return Rejection("invalid_event", "station must be at most 32 printable characters")
    if not _MIN_MS <= event.occurred_at_ms <= _MAX_MS:
        return Rejection(
            "invalid_event",
            f"occurred_at_ms {event.occurred_at_ms} is not a plausible time: check the agent's clock",
        )
    if len(event.body) > MAX_EVENT_BODY_BYTES:
        return Rejection("invalid_body", f"the event body is larger than {MAX_EVENT_BODY_BYTES // 1024} KiB")
    body: Any = {}
    if event.body:
        try:
            body = json.loads(event.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return Rejection(
                "invalid_body", "the event body is not UTF-8 JSON: the agent must send a JSON object"
            )
    if not isinstance(body, dict):
        return Rejection("invalid_body", "the event body must be a JSON object")
    try:
        facts = check_event_body(kind, body)
    except ValueError as exc:
        return Rejection("invalid_body", str(exc))
    return _Checked(event, body, facts)


def apply_events(store: CloudStore, agent: AgentIdentity, events: Sequence[IncomingEvent]) -> EventOutcome:
    """Record a batch of an agent's events and apply their effects; idempotent by event id."""
    verdicts: dict[str, Verdict] = {}
    fresh: dict[str, _Checked] = {}
    for event in events:
        checked = _check(event)
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
    store: CloudStore, agent: AgentIdentity, checked: list[_Checked]
) -> dict[str, _Tolerance]:
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
    decided: dict[str, _Tolerance] = {}
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
            decided[event_id] = _Tolerance(int(expected), tolerance)
    return decided


def _apply_with_retry(
    store: CloudStore, agent: AgentIdentity, checked: list[_Checked], tolerances: dict[str, _Tolerance]
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
    tx: WriteTransaction, agent: AgentIdentity, checked: list[_Checked]
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
    tx: WriteTransaction, agent: AgentIdentity, checked: list[_Checked], tolerances: dict[str, _Tolerance]
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
    conflicts = _Conflicts(tx, agent, tolerances)
    ledger = ParcelLedger(tx, agent.tenant_id)
    ledger.load(
        c.event.order_ref for c in checked if c.event.kind in _PARCEL_EVENTS and c.event.order_ref in orders
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
        # One restore sends one event per lease it knew; the first retires all of them.
        if event.kind == LEASE_RETIRED and agent.agent_id not in restored:
            try:
                retire_restored(
                    tx,
                    agent,
                    int(item.body["lease_id"]),
                    str(item.body["carrier"]),
                    str(item.body.get("reason") or ""),
                )
            except InputError as exc:
                decided[event.event_id] = Rejection("invalid_body", exc.message)
                continue
            restored.add(agent.agent_id)
        if event.kind in _NUMBER_EVENTS:
            try:
                record_number_event(
                    tx,
                    agent,
                    event.kind,
                    item.body,
                    order_ref=event.order_ref or None,
                    parcel=_parcel_of(item.body),
                    event_id=event.event_id,
                )
            except InputError as exc:
                decided[event.event_id] = Rejection("invalid_body", exc.message)
                continue
        if order is not None:
            state = states.setdefault(int(order.id), order.state)
            conflicts.check(item, order, state)
            effect = _EFFECTS.get(event.kind)
            if event.kind in _PARCEL_EVENTS:
                effect = _parcel_effect(
                    tx, agent, ledger, item, order, agent.warehouse, expected, occurred_at
                )
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
                _shipped_payload(ledger, by_id[order_id].order_ref, agent.warehouse, shipped_at)
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


def _shipped_payload(ledger: ParcelLedger, order_ref: str, warehouse: str, at: str) -> dict[str, Any]:
    """order.shipped for an order whose parcels were handed over at a dock station."""
    listed = ledger.shipped_parcels(order_ref)
    carriers = sorted({parcel["carrier"] for parcel in listed if parcel["carrier"]})
    return {
        "order_ref": order_ref,
        "warehouse": warehouse,
        "carrier": carriers[0] if len(carriers) == 1 else ",".join(carriers),
        "manifest_id": None,
        "shipped_at": at,
        "tracking_numbers": [parcel["tracking_number"] for parcel in listed if parcel["tracking_number"]],
        "parcels": listed,
    }


def _parcel_of(body: dict[str, Any]) -> int | None:
    parcel = body.get("parcel")
    return parcel if isinstance(parcel, int) and not isinstance(parcel, bool) else None


def _parcel_effect(
    tx: WriteTransaction,
    agent: AgentIdentity,
    ledger: ParcelLedger,
    item: _Checked,
    order: Any,
    warehouse: str,
    expected: dict[int, int],
    occurred_at: Callable[[int], datetime],
) -> tuple[frozenset[str], str] | None:
    """Apply a parcel event to the order's parcels; the order state it moves the order to, if any."""
    event = item.event
    if event.kind == EventKind.PARCEL_VOIDED.value:
        parcel = _parcel_of(item.body) or 1
        tracking = item.body.get("tracking_number") or ""
        tracking = tracking if isinstance(tracking, str) else ""
        ledger.voided(event.order_ref, parcel, tracking)
        # Its number is never used again (without calling back to the agent that voided it).
        void_number(
            tx,
            agent.tenant_id,
            ledger.carrier_of(event.order_ref, parcel),
            tracking,
            order_ref=event.order_ref,
            parcel=parcel,
            agent_id=agent.agent_id,
        )
        return None
    if event.kind == PARCEL_HANDED_OVER:
        tracking = item.body.get("tracking_number") or ""
        ledger.handed_over(
            event.order_ref, _parcel_of(item.body) or 1, tracking if isinstance(tracking, str) else ""
        )
        return _SHIPPED if ledger.all_shipped(event.order_ref) else None
    if event.kind == EventKind.ORDER_CLOSED.value:
        ledger.closed(event.order_ref, int(item.body["parcels"]))
        return _LABELLED
    facts = item.facts or ParcelFacts()
    job_id = item.body.get("job_id")
    ledger.printed(
        event.order_ref,
        warehouse,
        facts,
        job_id if isinstance(job_id, str) else "",
        occurred_at(event.occurred_at_ms),
        reprint=event.kind == EventKind.LABEL_REPRINTED.value,
    )
    if event.kind != EventKind.LABEL_PRINTED.value:
        return None
    if facts.document not in LABEL_DOCUMENTS:
        return _PACKED
    count = expected.get(int(order.id))
    if count is None:
        count = expected[int(order.id)] = expected_parcel_count(order.body)
    return _LABELLED if ledger.all_labelled(event.order_ref, count) else _PACKED


class _Conflicts:
    """Edge facts that contradict the cloud's view, each opening an exception for a person."""

    def __init__(self, tx: WriteTransaction, agent: AgentIdentity, tolerances: dict[str, _Tolerance]) -> None:
        self._tx = tx
        self._agent = agent
        self._tolerances = tolerances
        self._found: list[dict[str, Any]] = []

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
        if (
            event.kind == EventKind.EXCEPTION_RAISED.value
            and item.body.get("reason") == "template_over_budget"
        ):
            # A template version set aside at a station: someone must fix it and publish anew.
            self._add(
                item,
                order,
                ExceptionKind.RAISED_AT_EDGE,
                str(item.body.get("message") or "a label template overran its render budget")[:1000],
                {
                    "template": item.body.get("template"),
                    "template_version": item.body.get("template_version"),
                },
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
        weight = item.packed_weight()
        decided = self._tolerances.get(event.event_id)
        if weight is None or decided is None:
            return
        expected, tolerance = decided.expected_g, decided.tolerance_g
        if abs(weight - expected) > tolerance:
            self._add(
                item,
                order,
                ExceptionKind.WEIGHT_OUT_OF_TOLERANCE,
                f"order {ref} weighed {weight} g, expected {expected} g ± {tolerance} g: "
                "check the parcel's contents",
                {
                    "weight_g": weight,
                    "expected_weight_g": expected,
                    "tolerance_g": tolerance,
                    "parcel": item.facts.number if item.facts is not None else 1,
                },
            )

    def open_all(self) -> None:
        """Open every exception found, in the batch's transaction."""
        for found in self._found:
            open_exception(self._tx, **found)
