"""The vocabulary both ends of the sync agree on: change kinds, event kinds, credentials, and
the items of the Watch stream as typed values.

Change kinds flow cloud to edge in `Watch`; event kinds flow edge to cloud in `PushEvents`.
A Watch stream is a run of `WatchItem`s: the cloud builds them and turns each into its wire
message with `watch_response`; the agent reads each message back with `read_watch_item` and
decides by the item's type:

    SyncChange(revision, kind, key, body, deleted)   one entity's whole new state, or its deletion
    SnapshotBegin(revision) ... SnapshotEnd(revision)  every entity in scope between the two
    Heartbeat(revision)                              nothing new up to this revision
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from dockside.v1 import sync_pb2

__all__ = [
    "AUTH_METADATA_KEY",
    "ChangeKind",
    "EventKind",
    "Heartbeat",
    "SnapshotBegin",
    "SnapshotEnd",
    "SyncChange",
    "WatchItem",
    "WaveBody",
    "bearer",
    "read_watch_item",
    "watch_response",
]

AUTH_METADATA_KEY = "authorization"


def bearer(credential: str) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata that authenticates an agent."""
    return ((AUTH_METADATA_KEY, f"Bearer {credential}"),)


class ChangeKind(StrEnum):
    """What a `Change` carries; its key is given beside each."""

    WAREHOUSE = "warehouse"  # key: warehouse code
    STATION = "station"  # key: station code
    TEMPLATE_VERSION = "template_version"  # key: "name@version"
    RULESET = "ruleset"  # key: ruleset name
    ORDER = "order"  # key: order_ref
    WAVE = "wave"  # key: the wave's number, in decimal; body: station and order_refs in print order
    CARRIER = "carrier"  # key: carrier code; body: code, name, tracking kind and number format
    NUMBER_LEASE = "number_lease"  # key: lease id in decimal; a block of numbers for one agent
    # key: packer id in decimal; body: id, name, badge, pin_hash (argon2, never the PIN); a
    # disabled packer is a deletion
    PACKER = "packer"


class EventKind(StrEnum):
    """What an `EdgeEvent` reports."""

    ORDER_PACKED = "order_packed"
    LABEL_PRINTED = "label_printed"
    LABEL_FAILED = "label_failed"
    LABEL_HELD = "label_held"  # waiting for its printer (a fault to clear); no byte sent yet
    LABEL_REPRINTED = "label_reprinted"
    # Confirmed printing (issue 16): `label_printed` is recorded when the bytes went out (the
    # parcel is labelled as far as the cloud is concerned); these say what the printer said after.
    LABEL_CONFIRMED = "label_confirmed"  # the printer confirmed it printed the label
    LABEL_UNCONFIRMED = "label_unconfirmed"  # it could not: the packer is asked to check the label
    LABEL_HELD_IN_PRINTER = "label_held_in_printer"  # a fault after it took the label: prints once fixed
    WEIGHT_CAPTURED = "weight_captured"
    JOB_UNKNOWN = "job_unknown"
    EXCEPTION_RAISED = "exception_raised"
    STATION_STATUS = "station_status"
    NUMBER_USED = "number_used"  # a leased tracking number or SSCC taken by a job
    NUMBER_VOIDED = "number_voided"  # a taken number never to be used again (job failed, voided)
    ORDER_CLOSED = "order_closed"  # the packer ended an order with fewer parcels than expected
    PARCEL_VOIDED = "parcel_voided"  # a parcel's label voided (its tracking number with it)
    LEASE_RETIRED = "lease_retired"  # the agent never takes from this lease again (restored backup)
    PARCEL_HANDED_OVER = "parcel_handed_over"  # a dock station scanned the parcel onto the truck
    # The item check refused a scan at the station: a wrong item or an extra unit (body: reason,
    # scan, sku, packer); it stays out of the parcel.
    ITEM_CHECK_REFUSED = "item_check_refused"


@dataclass(frozen=True, slots=True)
class SyncChange:
    """One entity's whole new state at a revision, or its deletion: a Watch `Change`."""

    revision: int
    # A ChangeKind value, kept as text: a kind from a newer cloud still reaches the agent, which
    # refuses that one change instead of the whole stream.
    kind: str
    key: str  # what names the entity within its kind (see ChangeKind)
    body: bytes = b""  # a UTF-8 JSON object; empty when deleted
    deleted: bool = False

    @classmethod
    def of_text(cls, revision: int, kind: str, key: str, body: str, *, deleted: bool = False) -> SyncChange:
        """A change whose body is JSON text (as the cloud stores it); a deletion carries no body."""
        return cls(revision, kind, key, b"" if deleted else body.encode("utf-8"), deleted)


@dataclass(frozen=True, slots=True)
class SnapshotBegin:
    """A snapshot at `revision` starts: the entities that follow replace the agent's whole cache."""

    revision: int


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    """The snapshot at `revision` is complete: swap it in and resume after `revision`."""

    revision: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing new in the agent's scope up to `revision`; the stream is alive."""

    revision: int


WatchItem = SyncChange | SnapshotBegin | SnapshotEnd | Heartbeat


@dataclass(frozen=True, slots=True)
class WaveBody:
    """A wave as its warehouse's agents receive it (`ChangeKind.WAVE`, key: the wave number)."""

    id: int
    warehouse: str
    station: str
    order_refs: tuple[str, ...]  # in print order
    created_by: str
    created_at: str  # ISO 8601

    def to_json(self) -> str:
        """The body's compact JSON, fields in this order (the bytes every agent has received)."""
        fields = {
            "id": self.id,
            "warehouse": self.warehouse,
            "station": self.station,
            "order_refs": list(self.order_refs),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def watch_response(item: WatchItem) -> sync_pb2.WatchResponse:
    """The wire message for one Watch item."""
    match item:
        case SyncChange():
            change = sync_pb2.Change(
                revision=item.revision, kind=item.kind, key=item.key, deleted=item.deleted, body=item.body
            )
            return sync_pb2.WatchResponse(change=change)
        case SnapshotBegin():
            return sync_pb2.WatchResponse(snapshot_begin=sync_pb2.SnapshotBegin(revision=item.revision))
        case SnapshotEnd():
            return sync_pb2.WatchResponse(snapshot_end=sync_pb2.SnapshotEnd(revision=item.revision))
        case Heartbeat():
            return sync_pb2.WatchResponse(heartbeat=sync_pb2.Heartbeat(revision=item.revision))


def read_watch_item(response: sync_pb2.WatchResponse) -> WatchItem | None:
    """The Watch item a wire message carries, or None for one this side does not know (a newer cloud)."""
    which = response.WhichOneof("item")
    if which == "change":
        change = response.change
        return SyncChange(change.revision, change.kind, change.key, change.body, change.deleted)
    if which == "snapshot_begin":
        return SnapshotBegin(response.snapshot_begin.revision)
    if which == "snapshot_end":
        return SnapshotEnd(response.snapshot_end.revision)
    if which == "heartbeat":
        return Heartbeat(response.heartbeat.revision)
    return None
