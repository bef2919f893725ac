"""The vocabulary both ends of the sync agree on: change kinds, event kinds, credentials.

Change kinds flow cloud to edge in `Watch`; event kinds flow edge to cloud in `PushEvents`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AUTH_METADATA_KEY", "ChangeKind", "EventKind", "bearer"]

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


class EventKind(StrEnum):
    """What an `EdgeEvent` reports."""

    ORDER_PACKED = "order_packed"
    LABEL_PRINTED = "label_printed"
    LABEL_FAILED = "label_failed"
    LABEL_HELD = "label_held"  # waiting for its printer (a fault to clear); no byte sent yet
    LABEL_REPRINTED = "label_reprinted"
    WEIGHT_CAPTURED = "weight_captured"
    JOB_UNKNOWN = "job_unknown"
    EXCEPTION_RAISED = "exception_raised"
    STATION_STATUS = "station_status"
