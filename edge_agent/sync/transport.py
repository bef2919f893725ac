"""The small interface the sync engine talks through (httpx's BaseTransport idea).

The engine's resume, snapshot, retry and outbox logic only ever sees this interface, so it is
tested in memory (`MemoryTransport`) while the real gRPC transport (`GrpcTransport`) is tested
against a real server. Messages are the generated protobuf types of `dockside.v1`: they are the
wire contract, and converting them into look-alike classes would only add a place for bugs.

Errors: a transport raises `dockside.errors.SyncError` for a link problem worth retrying and
`AuthError` (or a SyncError with `fatal` set) when retrying unchanged cannot help.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from dockside.v1 import sync_pb2 as pb

__all__ = ["SyncTransport"]


class SyncTransport(Protocol):
    """How the agent reaches the cloud's Sync service."""

    async def enroll(self, request: pb.EnrollRequest) -> pb.EnrollResponse:
        """Trade a one-time token for an identity."""
        ...

    def watch(self, after_revision: int) -> AsyncIterator[pb.WatchResponse]:
        """The changes after `after_revision`, then live ones, until the stream breaks."""
        ...

    async def push_events(self, events: Sequence[pb.EdgeEvent]) -> pb.PushEventsResponse:
        """Deliver a batch; the answer says which are acked and which are refused for good."""
        ...

    async def report_status(self, request: pb.ReportStatusRequest) -> pb.ReportStatusResponse:
        """Tell the cloud how this agent and its devices are doing."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...
