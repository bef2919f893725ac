"""An agent's edge event as it comes off the wire, and the checks that make it trusted.

An event is checked before anything is stored: its id, kind, order reference, station, time and
JSON body, and (through cloud.orders.parcels) the facts of its parcel. What fails a check is
rejected with a code (the wire's) and a message for a person, never acknowledged. What passes is a
CheckedEvent, which cloud.sync.edge_events applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cloud.orders.parcels import LEASE_RETIRED, PARCEL_HANDED_OVER, check_event_body
from dockside.shipping.parcels import ParcelFacts
from dockside.sync import EventKind

__all__ = [
    "MAX_EVENT_BODY_BYTES",
    "CheckedEvent",
    "IncomingEvent",
    "Rejection",
    "Verdict",
    "check_event",
]

MAX_EVENT_BODY_BYTES = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
# Year 2000 to year 3000 in Unix milliseconds: anything else is a broken agent clock or field.
_MIN_MS, _MAX_MS = 946_684_800_000, 32_503_680_000_000
_MAX_PACKER_ID = 2**62

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
class CheckedEvent:
    """An event that passed every check, with its decoded body."""

    event: IncomingEvent
    body: dict[str, Any]
    facts: ParcelFacts | None = None  # a job event's parcel facts, checked

    @property
    def packer(self) -> int | None:
        """The id of the packer signed in at the station when the agent recorded it, checked."""
        packer = self.body.get("packer")
        return packer if isinstance(packer, int) else None

    def packed_weight(self) -> int | None:
        """The weight an order_packed event reports, when it reports one."""
        weight = self.body.get("weight_g")
        if self.event.kind != EventKind.ORDER_PACKED.value or not self.event.order_ref:
            return None
        return weight if isinstance(weight, int) and not isinstance(weight, bool) else None


def check_event(event: IncomingEvent) -> CheckedEvent | Rejection:
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
    packer = body.get("packer")
    if packer is not None and (
        not isinstance(packer, int) or isinstance(packer, bool) or not 0 < packer < _MAX_PACKER_ID
    ):
        return Rejection(
            "invalid_body", "packer must be null or the signed-in packer's id (a positive whole number)"
        )
    try:
        facts = check_event_body(kind, body)
    except ValueError as exc:
        return Rejection("invalid_body", str(exc))
    return CheckedEvent(event, body, facts)
