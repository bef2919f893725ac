"""The real transport: the cloud's Sync service over gRPC (grpc.aio) on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
import grpc.aio

from dockside.errors import AuthError, CloudTlsMismatch, SyncError
from dockside.sync import bearer
from dockside.v1 import sync_pb2 as pb
from dockside.v1 import sync_pb2_grpc as pb_grpc
from edge_agent.sync.tls import TlsPaths, handshake_hint

__all__ = ["CHANNEL_OPTIONS", "GrpcTransport", "sync_error"]

# Keepalive: the client pings at most once a minute (a cloud behind a load balancer drops
# streams that look idle; more frequent pings get a GOAWAY "too_many_pings" from servers).
# The channel's own reconnect backoff is kept short because the watch loop has its own,
# jittered one; a long channel backoff would keep failing calls fast after the cloud is back.
# grpc.min_reconnect_backoff_ms is left alone on purpose: gRPC uses it as the minimum time a
# connection attempt (TCP, TLS and HTTP/2 handshake) may take, 20 s by default. Set to 250 ms it
# failed every attempt that took longer ("connection attempt timed out before receiving SETTINGS
# frame"): a busy cloud after a restart, or a slow warehouse uplink with TLS.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

ENROLL_TIMEOUT_S = 15.0
PUSH_TIMEOUT_S = 30.0
REPORT_TIMEOUT_S = 10.0

_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
}


def sync_error(
    exc: grpc.aio.AioRpcError, target: str, *, tls: TlsPaths | None = None, tls_enabled: bool = False
) -> SyncError:
    """The Dockside error for a failed RPC: the cloud's own words when it gave a reason, and what
    to fix when the two ends disagree about TLS (CloudTlsMismatch, retried like any link failure)."""
    code = exc.code()
    details = (exc.details() or "").strip()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return AuthError(
            details or "the cloud refused this agent's credential: enroll the agent again",
            code="unauthenticated",
        )
    if code in _FATAL:
        error = SyncError(details or f"the cloud refused the request ({code.name})", code="sync_refused")
        error.fatal = True
        return error
    reason = f"{code.name.lower()}: {details}" if details else code.name.lower()
    hint = handshake_hint(details, tls, enabled=tls_enabled) if code == grpc.StatusCode.UNAVAILABLE else None
    if hint is not None:
        return CloudTlsMismatch(
            f"{hint}; the agent keeps retrying and packing goes on meanwhile (cloud {target}: {reason})"
        )
    return SyncError(
        f"cannot reach the cloud at {target} ({reason}): check the network and the cloud address; "
        "the agent keeps retrying and packing goes on meanwhile",
        code="cloud_unreachable",
    )


class GrpcTransport:
    """`SyncTransport` over a gRPC channel to `target` ("host:port")."""

    def __init__(
        self,
        target: str,
        credential: str | None = None,
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
        tls: TlsPaths | None = None,
    ) -> None:
        """`tls` names the files `channel_credentials` were made from, for hints when TLS fails."""
        self.target = target
        self._tls = tls
        self._metadata = bearer(credential) if credential else ()
        self._channel_credentials = channel_credentials
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.SyncAsyncStub | None = None

    def _sync_stub(self) -> pb_grpc.SyncAsyncStub:
        # Created on first use: a grpc.aio channel belongs to the event loop it is made on.
        if self._stub is None:
            if self._channel_credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._channel_credentials, options=CHANNEL_OPTIONS
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._stub = pb_grpc.SyncStub(self._channel)
        assert self._stub is not None
        return self._stub

    async def enroll(self, request: pb.EnrollRequest) -> pb.EnrollResponse:
        try:
            return await self._sync_stub().Enroll(request, timeout=ENROLL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    async def watch(self, after_revision: int) -> AsyncIterator[pb.WatchResponse]:
        call = self._sync_stub().Watch(
            pb.WatchRequest(after_revision=after_revision), metadata=self._metadata
        )
        try:
            async for item in call:
                yield item
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    async def push_events(self, events: Sequence[pb.EdgeEvent]) -> pb.PushEventsResponse:
        try:
            return await self._sync_stub().PushEvents(
                pb.PushEventsRequest(events=events), metadata=self._metadata, timeout=PUSH_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    async def report_status(self, request: pb.ReportStatusRequest) -> pb.ReportStatusResponse:
        try:
            return await self._sync_stub().ReportStatus(
                request, metadata=self._metadata, timeout=REPORT_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.aio.AioRpcError) -> SyncError:
        return sync_error(exc, self.target, tls=self._tls, tls_enabled=self._channel_credentials is not None)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None
