"""The shipping facts agents report: parcels labelled, voided and handed over, tracking numbers
used and voided, and leases retired by a restored agent.

Applied by cloud.sync.edge_events inside the batch's transaction, through the capabilities that
keep these records: the order's parcels (cloud.orders.parcels) and the tracking numbers and leases
(cloud.shipping). A printed shipping or GS1 carton label makes its parcel labelled, and the order
becomes `labelled` once every parcel it expects is (or the packer closed it: ORDER_CLOSED),
`packed` before that. A handover ships the parcel at a dock station, and the order once every
parcel it did not void is shipped. Number events (NUMBER_USED, NUMBER_VOIDED) go to the shipping
capability's record of tracking numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cloud.fleet.agents import AgentIdentity
from cloud.orders.parcels import (
    LABEL_DOCUMENTS,
    LEASE_RETIRED,
    PARCEL_HANDED_OVER,
    ParcelLedger,
    expected_parcel_count,
)
from cloud.shipping.leases import record_number_event, retire_restored
from cloud.shipping.voids import void_number
from cloud.storage.store import WriteTransaction
from cloud.sync.incoming_events import CheckedEvent, Rejection
from dockside.errors import InputError
from dockside.orders import OrderState
from dockside.shipping.parcels import ParcelFacts
from dockside.sync import EventKind

__all__ = ["PARCEL_EVENTS", "parcel_effect", "record_leases_and_numbers", "shipped_payload"]

_NUMBER_EVENTS = frozenset({EventKind.NUMBER_USED.value, EventKind.NUMBER_VOIDED.value})
# The events whose order's parcels the batch reads and changes.
PARCEL_EVENTS = frozenset(
    {
        EventKind.LABEL_PRINTED.value,
        EventKind.LABEL_REPRINTED.value,
        EventKind.PARCEL_VOIDED.value,
        EventKind.ORDER_CLOSED.value,
        PARCEL_HANDED_OVER,
    }
)


def record_leases_and_numbers(
    tx: WriteTransaction, agent: AgentIdentity, item: CheckedEvent, restored: set[str]
) -> Rejection | None:
    """Record a lease_retired or number event with the shipping capability; why not, if it cannot be.

    `restored` holds the agents whose leases this batch already retired: one restore sends one
    event per lease it knew, and the first retires all of them.
    """
    event = item.event
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
            return Rejection("invalid_body", exc.message)
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
            return Rejection("invalid_body", exc.message)
    return None


def shipped_payload(ledger: ParcelLedger, order_ref: str, warehouse: str, at: str) -> dict[str, Any]:
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


def parcel_effect(
    tx: WriteTransaction,
    agent: AgentIdentity,
    ledger: ParcelLedger,
    item: CheckedEvent,
    order: Any,
    warehouse: str,
    expected: dict[int, int],
    occurred_at: Callable[[int], datetime],
) -> str | None:
    """Apply a parcel event to the order's parcels; the order state it calls for, if any."""
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
        return OrderState.SHIPPED.value if ledger.all_shipped(event.order_ref) else None
    if event.kind == EventKind.ORDER_CLOSED.value:
        ledger.closed(event.order_ref, int(item.body["parcels"]))
        return OrderState.LABELLED.value
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
        return OrderState.PACKED.value
    count = expected.get(int(order.id))
    if count is None:
        count = expected[int(order.id)] = expected_parcel_count(order.body)
    return (
        OrderState.LABELLED.value if ledger.all_labelled(event.order_ref, count) else OrderState.PACKED.value
    )
