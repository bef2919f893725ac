"""The parcels of an order as the edge reports them: each job event's parcel facts checked
(`check_event_body`), then applied inside the edge-event batch's transaction (`ParcelLedger`).

    (OMS) expected ──label_printed──► labelled ──manifest──► manifested ──handover──► shipped
                                          │  ▲
                              parcel_voided  └── label_printed again (relabel)
                                          ▼
                                        voided

A parcel row (the `parcels` table) exists once the edge printed a shipping label or GS1 carton
label for it; before that the parcel is only what the order's `parcels` list expects. Edge job
events carry each parcel's facts (number, document, tracking number, dimensions, SSCC). Reading
parcels back is cloud.orders.parcel_reads; the OMS's carrier label for a parcel,
cloud.orders.oms_labels; parcels left on the dock, cloud.orders.overdue_parcels; labels bought
from a carrier API, cloud.orders.bought_labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeGuard

import pydantic_core
from sqlalchemy import bindparam, select, update

from cloud.orders.bought_labels import void_bought_labels
from cloud.storage import schema
from cloud.storage.store import WriteTransaction, dumps
from cloud.webhooks.delivery import WebhookEvent, emit
from dockside.shipping.parcels import MAX_PARCELS, DocumentKind, ParcelFacts
from dockside.sync import EventKind

__all__ = [
    "JOB_EVENTS",
    "LABEL_DOCUMENTS",
    "LEASE_RETIRED",
    "PARCEL_HANDED_OVER",
    "ParcelLabelled",
    "ParcelLedger",
    "ParcelState",
    "check_event_body",
    "expected_parcel_count",
    "parcel_facts",
]


class ParcelState(StrEnum):
    """Where a parcel is; `expected` is a parcel the OMS announced that has no label yet."""

    EXPECTED = "expected"
    LABELLED = "labelled"
    VOIDED = "voided"
    MANIFESTED = "manifested"
    SHIPPED = "shipped"


# The documents that make a parcel labelled: what a carrier's scanner reads on the parcel.
LABEL_DOCUMENTS = frozenset({DocumentKind.SHIPPING_LABEL, DocumentKind.CARTON_LABEL})
# Job events carry the facts of the parcel their document is for (contract: Events).
JOB_EVENTS = frozenset(
    {
        EventKind.LABEL_PRINTED.value,
        EventKind.LABEL_HELD.value,
        EventKind.LABEL_FAILED.value,
        EventKind.JOB_UNKNOWN.value,
        EventKind.LABEL_REPRINTED.value,
        EventKind.ORDER_PACKED.value,
        EventKind.LABEL_CONFIRMED.value,
        EventKind.LABEL_UNCONFIRMED.value,
        EventKind.LABEL_HELD_IN_PRINTER.value,
    }
)
# Wave 2 edge events, by their wire names (dockside.sync.EventKind has them as LEASE_RETIRED and
# PARCEL_HANDED_OVER; the strings keep the cloud working with an agent of either age).
LEASE_RETIRED = "lease_retired"
PARCEL_HANDED_OVER = "parcel_handed_over"
_TRACKING = re.compile(r"^[A-Z0-9]{0,40}$")
_SSCC = re.compile(r"^([0-9]{18})?$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_MAX_DIMENSION_MM = 5_000
_MAX_WEIGHT_G = 1_000_000
_MAX_SERIAL = 10**30
# Enum lookups cost microseconds each: too much for every event of a 5,000-event batch.
_DOCUMENTS = {kind.value: kind for kind in DocumentKind}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(body: Mapping[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    value = body.get(key, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit or not _PRINTABLE.match(value):
        raise ValueError(f"{key} must be a text of at most {limit} printable characters")
    if required and not value:
        raise ValueError(f"{key} is missing: the agent must send it")
    return value


def _tracking(body: Mapping[str, Any], key: str = "tracking_number") -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str) or not _TRACKING.match(value):
        raise ValueError(
            f"{key} must be at most 40 capital letters and digits, without spaces (got {str(value)[:60]!r})"
        )
    return value


def _parcel_number(body: Mapping[str, Any], key: str = "parcel") -> int:
    value = body.get(key, 1)
    if not _is_int(value) or not 1 <= value <= MAX_PARCELS:
        raise ValueError(f"{key} must be a parcel number from 1 to {MAX_PARCELS} (got {str(value)[:20]})")
    return int(value)


def parcel_facts(body: Mapping[str, Any]) -> ParcelFacts:
    """The parcel facts of a job event's body; ValueError saying what is wrong with them.

    Every key may be missing (an agent older than parcels sent none): parcel 1, its shipping label.
    """
    number = _parcel_number(body)
    document = body.get("document", DocumentKind.SHIPPING_LABEL.value)
    if document is None:
        document = DocumentKind.SHIPPING_LABEL.value
    kind = _DOCUMENTS.get(document) if isinstance(document, str) else None
    if kind is None:
        raise ValueError(f"document must be one of {', '.join(DocumentKind)} (got {str(document)[:40]!r})")
    dimensions = body.get("dimensions_mm")
    if dimensions is not None and (
        not isinstance(dimensions, list)
        or len(dimensions) != 3
        or not all(_is_int(side) and 1 <= side <= _MAX_DIMENSION_MM for side in dimensions)
    ):
        raise ValueError(
            f"dimensions_mm must be null or [length, width, height], each 1 to {_MAX_DIMENSION_MM} mm"
        )
    weight = body.get("weight_g")
    if weight is not None and (not _is_int(weight) or not 0 <= weight <= _MAX_WEIGHT_G):
        # weight_g is an old key, loosely sent: only a label's weight becomes the parcel's.
        weight = None
    sscc = body.get("sscc", "")
    if sscc is None:
        sscc = ""
    if not isinstance(sscc, str) or not _SSCC.match(sscc):
        raise ValueError("sscc must be empty or the 18 digits of an SSCC")
    carrier = body.get("carrier", "")
    service = body.get("service", "")
    return ParcelFacts(
        number=number,
        document=kind,
        tracking_number=_tracking(body),
        carrier=carrier[:32] if isinstance(carrier, str) else "",
        service=service[:64] if isinstance(service, str) else "",
        weight_g=weight,
        dimensions_mm=(dimensions[0], dimensions[1], dimensions[2]) if dimensions else None,
        sscc=sscc,
    )


def _number_event(kind: str, body: Mapping[str, Any]) -> None:
    lease = body.get("lease_id")
    if not _is_int(lease) or lease < 1:
        raise ValueError("lease_id must be the id of the number lease the number came from (an integer >= 1)")
    serial = body.get("serial")
    if not _is_int(serial) or not 0 <= serial < _MAX_SERIAL:
        raise ValueError("serial must be the number's serial part, an integer >= 0")
    _text(body, "carrier", 32, required=True)
    if not _tracking(body):
        raise ValueError("tracking_number is missing: the agent must send the number it took")
    _text(body, "job_id", 64)
    if kind == EventKind.NUMBER_VOIDED.value:
        _text(body, "reason", 500)


def check_event_body(kind: str, body: Mapping[str, Any]) -> ParcelFacts | None:
    """A job event's parcel facts (None for other kinds), once its parcel, number or close facts are
    checked; ValueError saying why the event can never be accepted."""
    try:
        if kind in JOB_EVENTS:
            return parcel_facts(body)
        if kind == EventKind.PARCEL_VOIDED.value:
            if "parcel" not in body:
                raise ValueError("parcel is missing: name the parcel whose label was voided")
            _parcel_number(body)
            _tracking(body)
            _text(body, "reason", 500)
        elif kind == PARCEL_HANDED_OVER:
            if "parcel" not in body:
                raise ValueError("parcel is missing: name the parcel that was handed over")
            _parcel_number(body)
            _tracking(body)
            _text(body, "carrier", 32)
        elif kind == LEASE_RETIRED:
            lease = body.get("lease_id")
            if not _is_int(lease) or lease < 1:
                raise ValueError("lease_id must be the id of the retired number lease (an integer >= 1)")
            _text(body, "carrier", 32, required=True)
            _text(body, "reason", 500)
        elif kind == EventKind.ORDER_CLOSED.value:
            count = body.get("parcels")
            if not _is_int(count) or not 0 <= count <= MAX_PARCELS:
                raise ValueError(f"parcels must be how many parcels the order shipped as, 0 to {MAX_PARCELS}")
        elif kind in (EventKind.NUMBER_USED.value, EventKind.NUMBER_VOIDED.value):
            _number_event(kind, body)
    except ValueError as exc:
        raise ValueError(f"the {kind} event's {exc}: fix the agent; the event is kept for a person") from None
    return None


def expected_parcel_count(order_body: str) -> int:
    """How many parcels an order (its stored JSON) is expected to ship as: its `parcels`, at least 1."""
    # Stored bodies are canonical pydantic JSON: an order without parcels says so in a few bytes.
    if '"parcels":[]' in order_body:
        return 1
    parcels = pydantic_core.from_json(order_body).get("parcels") or []
    return max(1, len(parcels))


@dataclass(slots=True)
class _Parcel:
    """A parcel row as the batch sees it (id None: not stored yet)."""

    id: int | None
    number: int
    tracking_number: str = ""
    carrier: str = ""
    service: str = ""
    weight_g: int | None = None
    dimensions_mm: list[int] | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)
    state: str = ParcelState.LABELLED.value
    labelled_at: datetime | None = None
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class ParcelLabelled:
    """A parcel that became labelled (or got a new tracking number) in a batch: a `parcel.labelled`."""

    order_ref: str
    warehouse: str
    number: int

    def payload(self, parcel: _Parcel) -> dict[str, Any]:
        """The webhook's data."""
        return {
            "order_ref": self.order_ref,
            "warehouse": self.warehouse,
            "parcel": self.number,
            "tracking_number": parcel.tracking_number,
            "carrier": parcel.carrier,
            "service": parcel.service,
            "weight_g": parcel.weight_g,
            "dimensions_mm": parcel.dimensions_mm,
        }


_COLUMNS = (
    "tracking_number",
    "carrier",
    "service",
    "weight_g",
    "dimensions_mm",
    "documents",
    "state",
    "labelled_at",
)


class ParcelLedger:
    """The parcels one edge-event batch touches, changed in memory and written once at the end.

    Rows are loaded for the batch's orders up front (one query per chunk of refs); `flush` inserts
    the new ones and updates the changed ones in the batch's transaction, and queues a
    `parcel.labelled` webhook for every parcel that became labelled.
    """

    _CHUNK = 2_000

    def __init__(self, tx: WriteTransaction, tenant_id: int) -> None:
        self._tx = tx
        self._tenant_id = tenant_id
        self._orders: dict[str, dict[int, _Parcel]] = {}
        self._labelled: dict[tuple[str, int], ParcelLabelled] = {}

    def load(self, refs: Iterable[str]) -> None:
        """Read the stored parcels of `refs`."""
        table = schema.parcels
        wanted = sorted(set(refs) - self._orders.keys())
        for ref in wanted:
            self._orders[ref] = {}
        for start in range(0, len(wanted), self._CHUNK):
            rows = self._tx.conn.execute(
                select(table).where(
                    table.c.tenant_id == self._tenant_id,
                    schema.one_of(
                        table.c.order_ref, wanted[start : start + self._CHUNK], self._tx.conn.dialect
                    ),
                )
            ).mappings()
            for row in rows:
                self._orders[row["order_ref"]][int(row["number"])] = _Parcel(
                    id=int(row["id"]),
                    number=int(row["number"]),
                    tracking_number=row["tracking_number"],
                    carrier=row["carrier"],
                    service=row["service"],
                    weight_g=row["weight_g"],
                    dimensions_mm=json.loads(row["dimensions_mm"]) if row["dimensions_mm"] else None,
                    documents=json.loads(row["documents"]),
                    state=row["state"],
                    labelled_at=row["labelled_at"],
                )

    def _parcels(self, order_ref: str) -> dict[int, _Parcel]:
        if order_ref not in self._orders:
            self.load([order_ref])
        return self._orders[order_ref]

    def printed(
        self,
        order_ref: str,
        warehouse: str,
        facts: ParcelFacts,
        job_id: str,
        at: datetime,
        *,
        reprint: bool = False,
    ) -> None:
        """A document of the parcel printed: a label makes the parcel labelled, others are noted.

        A document before the parcel's label (a packing slip first) keeps the parcel `expected`
        with that document noted. A reprint only notes its document on a parcel that has a row:
        it never brings back a voided label (its tracking number is gone for good).
        """
        parcels = self._parcels(order_ref)
        parcel = parcels.get(facts.number)
        is_label = facts.document in LABEL_DOCUMENTS
        if reprint and (parcel is None or parcel.state == ParcelState.VOIDED.value):
            return
        if parcel is None:
            parcel = parcels[facts.number] = _Parcel(
                id=None, number=facts.number, state=ParcelState.EXPECTED.value, dirty=True
            )
        document = {"kind": facts.document.value, "job_id": job_id}
        if document not in parcel.documents:
            parcel.documents.append(document)
            parcel.dirty = True
        if not is_label or reprint:
            return
        tracking = facts.tracking_number or facts.sscc
        # A new parcel, or one whose label was voided and is now labelled again.
        fresh = parcel.state in (ParcelState.EXPECTED.value, ParcelState.VOIDED.value)
        if parcel.state in (ParcelState.MANIFESTED.value, ParcelState.SHIPPED.value) and not fresh:
            # A reprint-like label for a parcel already closed into a manifest: keep what the
            # manifest holds (its weight and tracking number went to the carrier).
            return
        changed_tracking = bool(tracking) and tracking != parcel.tracking_number
        if fresh:
            # A relabelled parcel starts from this label's facts, not the voided one's.
            parcel.tracking_number = tracking
            parcel.carrier, parcel.service = facts.carrier, facts.service
            parcel.weight_g = facts.weight_g
            parcel.dimensions_mm = list(facts.dimensions_mm) if facts.dimensions_mm else None
            parcel.labelled_at = at
        else:
            if tracking and (facts.document is DocumentKind.SHIPPING_LABEL or not parcel.tracking_number):
                parcel.tracking_number = tracking
            parcel.carrier = facts.carrier or parcel.carrier
            parcel.service = facts.service or parcel.service
            parcel.weight_g = facts.weight_g if facts.weight_g is not None else parcel.weight_g
            if facts.dimensions_mm:
                parcel.dimensions_mm = list(facts.dimensions_mm)
        parcel.state = ParcelState.LABELLED.value
        parcel.dirty = True
        if fresh or changed_tracking:
            self._labelled[(order_ref, facts.number)] = ParcelLabelled(order_ref, warehouse, facts.number)

    def voided(self, order_ref: str, number: int, tracking_number: str) -> None:
        """The parcel's label was voided at the edge: its tracking number is gone with it."""
        parcels = self._parcels(order_ref)
        parcel = parcels.get(number)
        if parcel is None:
            parcel = parcels[number] = _Parcel(
                id=None, number=number, tracking_number=tracking_number, state=ParcelState.VOIDED.value
            )
            parcel.dirty = True
            return
        if parcel.state == ParcelState.LABELLED.value and (
            not tracking_number or tracking_number == parcel.tracking_number
        ):
            parcel.state = ParcelState.VOIDED.value
            parcel.dirty = True
            self._labelled.pop((order_ref, number), None)
            # A label the cloud bought for it is voided at the carrier's API too (never by the agent).
            void_bought_labels(parcel.documents)

    def carrier_of(self, order_ref: str, number: int) -> str:
        """The carrier of a parcel as the batch sees it ("" when it has none)."""
        parcel = self._parcels(order_ref).get(number)
        return parcel.carrier if parcel is not None else ""

    def handed_over(self, order_ref: str, number: int, tracking_number: str) -> bool:
        """A dock station scanned the parcel onto the carrier's truck: it is shipped. False (and no
        change) when the parcel has no label, its label was voided or the number is not its own."""
        parcel = self._parcels(order_ref).get(number)
        if parcel is None or parcel.state not in (ParcelState.LABELLED.value, ParcelState.MANIFESTED.value):
            return False
        if tracking_number and parcel.tracking_number and tracking_number != parcel.tracking_number:
            return False
        parcel.state = ParcelState.SHIPPED.value
        parcel.dirty = True
        return True

    def all_shipped(self, order_ref: str) -> bool:
        """Whether every parcel of the order that was not voided is shipped (and there is one)."""
        states = [parcel.state for parcel in self._parcels(order_ref).values()]
        live = [state for state in states if state != ParcelState.VOIDED.value]
        return bool(live) and all(state == ParcelState.SHIPPED.value for state in live)

    def shipped_parcels(self, order_ref: str) -> list[dict[str, Any]]:
        """The shipped parcels of an order, as order.shipped lists them."""
        return [
            {
                "number": parcel.number,
                "tracking_number": parcel.tracking_number,
                "carrier": parcel.carrier,
                "service": parcel.service,
                "weight_g": parcel.weight_g,
            }
            for number, parcel in sorted(self._parcels(order_ref).items())
            if parcel.state == ParcelState.SHIPPED.value
        ]

    def closed(self, order_ref: str, count: int) -> None:
        """The packer ended the order at `count` parcels: an unlabelled parcel past it never ships."""
        for number, parcel in self._parcels(order_ref).items():
            if number > count and parcel.state == ParcelState.EXPECTED.value:
                parcel.state = ParcelState.VOIDED.value
                parcel.dirty = True

    def all_labelled(self, order_ref: str, expected: int) -> bool:
        """Whether parcels 1..expected of the order are each labelled (or further along)."""
        parcels = self._parcels(order_ref)
        done = (ParcelState.LABELLED.value, ParcelState.MANIFESTED.value, ParcelState.SHIPPED.value)
        return all(number in parcels and parcels[number].state in done for number in range(1, expected + 1))

    def flush(self) -> None:
        """Write what changed and queue `parcel.labelled` for the parcels that became labelled."""
        table = schema.parcels
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for ref, parcels in self._orders.items():
            for parcel in parcels.values():
                if not parcel.dirty:
                    continue
                values = {
                    "tracking_number": parcel.tracking_number,
                    "carrier": parcel.carrier,
                    "service": parcel.service,
                    "weight_g": parcel.weight_g,
                    "dimensions_mm": dumps(parcel.dimensions_mm) if parcel.dimensions_mm else None,
                    "documents": dumps(parcel.documents),
                    "state": parcel.state,
                    "labelled_at": parcel.labelled_at,
                }
                if parcel.id is None:
                    inserts.append(
                        {"tenant_id": self._tenant_id, "order_ref": ref, "number": parcel.number, **values}
                    )
                else:
                    updates.append({"_id": parcel.id, **{f"_{key}": value for key, value in values.items()}})
        if inserts:
            schema.insert_rows(self._tx.conn, table, inserts)
        if updates:
            self._tx.conn.execute(
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values({name: bindparam(f"_{name}") for name in _COLUMNS}),
                updates,
            )
        emit(
            self._tx,
            self._tenant_id,
            WebhookEvent.PARCEL_LABELLED,
            [
                labelled.payload(self._orders[labelled.order_ref][labelled.number])
                for labelled in self._labelled.values()
            ],
        )
