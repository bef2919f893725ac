"""The gRPC Sync service agents talk to: Enroll, Watch, PushEvents and ReportStatus.

Every RPC except Enroll authenticates the agent from `authorization: Bearer <credential>`
metadata. Database work runs in worker threads; a failure that is not the caller's fault is
logged here and answered with INTERNAL, never with a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from cloud import metrics
from cloud.fleet.agents import (
    AgentIdentity,
    DeviceReport,
    StatusReport,
    authenticate_agent,
    enroll_agent,
    report_status,
)
from cloud.storage.store import CloudStore
from cloud.sync.edge_events import MAX_EVENTS_PER_BATCH, apply_events
from cloud.sync.incoming_events import IncomingEvent
from cloud.sync.tls import ServerTls
from cloud.sync.watch import ChangeFeed
from dockside.errors import AuthError, DocksideError, InputError
from dockside.sync import AUTH_METADATA_KEY
from dockside.v1 import sync_pb2, sync_pb2_grpc

__all__ = ["GRPC_SERVER_OPTIONS", "SyncService", "build_grpc_server"]

log = logging.getLogger(__name__)

GRPC_SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    # Ping idle agents every minute so a dead link is noticed; accept agents' own pings down to
    # every 30 s, even between calls, so their keepalive (>= 60 s) is never punished.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_ping_strikes", 0),
    # Two clouds must never share a port by accident (gRPC turns SO_REUSEPORT on by default).
    ("grpc.so_reuseport", 0),
    # A fleet reconnecting at once (a cloud restart, a network back) brings calls faster than the
    # Python server loop takes them off gRPC's queue. Past 1,000 waiting calls gRPC starts refusing
    # new ones at random, and past 3,000 all of them, with a bare CANCELLED the agent cannot tell
    # from a real cancel. A waiting call costs little; let a whole fleet wait its turn instead.
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 40_000),
    # And for long enough: gRPC drops a call still waiting after 30 s by default, again with a bare
    # CANCELLED. On a busy 2-core cloud, 2,000 streams opened at once waited longer than that.
    ("grpc.server_max_unrequested_time_in_server", 120),
]


class SyncService(sync_pb2_grpc.SyncServicer):
    """The cloud side of the edge-cloud sync contract (proto/dockside/v1/sync.proto)."""

    def __init__(self, store: CloudStore, feed: ChangeFeed | None = None) -> None:
        self.store = store
        self.feed = feed if feed is not None else ChangeFeed(store)

    async def Enroll(
        self,
        request: sync_pb2.EnrollRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> sync_pb2.EnrollResponse:
        try:
            enrollment = await asyncio.to_thread(
                enroll_agent,
                self.store,
                request.token,
                hostname=request.hostname,
                agent_version=request.agent_version,
            )
        except Exception as exc:
            await _fail(context, "Enroll", exc)
        metrics.AGENTS_ENROLLED.inc()
        log.info("agent %s enrolled in warehouse %s", enrollment.agent_id, enrollment.warehouse)
        return sync_pb2.EnrollResponse(
            agent_id=enrollment.agent_id,
            credential=enrollment.credential,
            warehouse=enrollment.warehouse,
            tenant=enrollment.tenant,
        )

    # Yields bytes, not messages: registered without a serializer (see _add_sync_service).
    async def Watch(  # type: ignore[override]
        self,
        request: sync_pb2.WatchRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[bytes]:
        """The agent's changes as serialized WatchResponse messages (see cloud.sync.watch)."""
        agent = await self._agent(context, "Watch")
        metrics.WATCH_STREAMS.inc()
        try:
            with self.store.revocations.watching(agent.agent_id) as revoked:
                async for wire in self.feed.stream(agent, request.after_revision, revoked):
                    yield wire
            if revoked.is_set():
                raise AuthError("this agent was revoked: enroll it again with a new token")
        except Exception as exc:
            await _fail(context, "Watch", exc)
        finally:
            metrics.WATCH_STREAMS.dec()

    async def PushEvents(
        self,
        request: sync_pb2.PushEventsRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> sync_pb2.PushEventsResponse:
        agent = await self._agent(context, "PushEvents")
        if len(request.events) > MAX_EVENTS_PER_BATCH:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a batch holds at most {MAX_EVENTS_PER_BATCH} events (got {len(request.events)}): "
                "send smaller batches",
            )
        events = [
            IncomingEvent(
                event_id=event.event_id,
                kind=event.kind,
                order_ref=event.order_ref,
                station=event.station,
                occurred_at_ms=event.occurred_at_ms,
                body=event.body,
                sequence=event.sequence,
            )
            for event in request.events
        ]
        try:
            outcome = await asyncio.to_thread(apply_events, self.store, agent, events)
        except Exception as exc:
            await _fail(context, "PushEvents", exc)
        metrics.EVENTS.labels("acked").inc(len(outcome.acked))
        metrics.EVENTS.labels("rejected").inc(len(outcome.rejected))
        return sync_pb2.PushEventsResponse(
            acked=outcome.acked,
            rejected=[
                sync_pb2.RejectedEvent(event_id=event_id, code=code, message=message)
                for event_id, code, message in outcome.rejected
            ],
        )

    async def ReportStatus(
        self,
        request: sync_pb2.ReportStatusRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> sync_pb2.ReportStatusResponse:
        agent = await self._agent(context, "ReportStatus")
        report = StatusReport(
            agent_version=request.agent_version,
            revision=request.revision,
            outbox_depth=request.outbox_depth,
            devices=[
                DeviceReport(
                    id=d.id,
                    kind=d.kind,
                    station=d.station,
                    model=d.model,
                    address=d.address,
                    state=d.state,
                    message=d.message,
                )
                for d in request.devices
            ],
        )
        try:
            now = await asyncio.to_thread(report_status, self.store, agent, report)
        except Exception as exc:
            await _fail(context, "ReportStatus", exc)
        return sync_pb2.ReportStatusResponse(server_time_ms=int(now.timestamp() * 1000))

    async def _agent(self, context: aio.ServicerContext[Any, Any], rpc: str) -> AgentIdentity:
        """The calling agent, from its bearer credential, or an UNAUTHENTICATED answer."""
        header = ""
        for key, value in context.invocation_metadata() or ():
            if key == AUTH_METADATA_KEY:
                header = value if isinstance(value, str) else value.decode("utf-8", "replace")
        scheme, _, credential = header.strip().partition(" ")
        try:
            if scheme.lower() != "bearer" or not credential.strip():
                raise AuthError(
                    f"{rpc} needs the metadata 'authorization: Bearer <credential>': enroll the agent "
                    "and send the credential Enroll returned"
                )
            return await asyncio.to_thread(authenticate_agent, self.store, credential.strip())
        except Exception as exc:
            await _fail(context, rpc, exc)


async def _fail(context: aio.ServicerContext[Any, Any], rpc: str, exc: Exception) -> NoReturn:
    """Answer an RPC with the status its failure deserves; log what is not the caller's fault."""
    if isinstance(exc, AuthError):
        metrics.RPC_FAILURES.labels(rpc, "unauthenticated").inc()
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
    if isinstance(exc, InputError):
        metrics.RPC_FAILURES.labels(rpc, "invalid_argument").inc()
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
    metrics.RPC_FAILURES.labels(rpc, "internal").inc()
    if isinstance(exc, DocksideError):
        await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
    incident = f"{time.time_ns():x}"
    log.error("%s failed (incident %s)", rpc, incident, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"the cloud failed on this call (incident {incident}, logged): retry later"
    )


def _parsed(request_type: Any, rpc: str) -> Any:
    """Parse a request ourselves so a malformed one is INVALID_ARGUMENT, not UNKNOWN with a trace."""

    async def parse(raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
        try:
            return request_type.FromString(raw)
        except DecodeError:
            metrics.RPC_FAILURES.labels(rpc, "invalid_argument").inc()
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the {rpc} request is not a valid {request_type.DESCRIPTOR.full_name} message: "
                "send the message proto/dockside/v1/sync.proto defines",
            )

    return parse


def _add_sync_service(service: SyncService, server: aio.Server) -> None:
    """Register the Sync service like the generated code does, but with our own parsing."""

    def unary(rpc: str, request_type: Any, response_type: Any) -> grpc.RpcMethodHandler[Any, Any]:
        parse = _parsed(request_type, rpc)
        method = getattr(service, rpc)

        async def handle(raw: bytes, context: aio.ServicerContext[Any, Any]) -> Any:
            return await method(await parse(raw, context), context)

        return grpc.unary_unary_rpc_method_handler(
            handle, response_serializer=response_type.SerializeToString
        )

    parse_watch = _parsed(sync_pb2.WatchRequest, "Watch")

    async def watch(raw: bytes, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
        async for wire in service.Watch(await parse_watch(raw, context), context):
            yield wire

    handlers = {
        "Enroll": unary("Enroll", sync_pb2.EnrollRequest, sync_pb2.EnrollResponse),
        # No serializer: the feed hands over WatchResponse bytes, serialized once for every stream.
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
        "PushEvents": unary("PushEvents", sync_pb2.PushEventsRequest, sync_pb2.PushEventsResponse),
        "ReportStatus": unary("ReportStatus", sync_pb2.ReportStatusRequest, sync_pb2.ReportStatusResponse),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("dockside.v1.Sync", handlers),))


def build_grpc_server(
    store: CloudStore, address: str, *, feed: ChangeFeed | None = None, tls: ServerTls | None = None
) -> tuple[aio.Server, int]:
    """A grpc.aio server with the Sync service bound to `address` (TLS when `tls` is given);
    returns it and the bound port."""
    server = aio.server(options=GRPC_SERVER_OPTIONS)
    _add_sync_service(SyncService(store, feed), server)
    try:
        if tls is not None:
            port = server.add_secure_port(address, tls.credentials())
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # how grpcio reports a failed bind
        raise OSError(f"cannot listen for gRPC on {address} (is the port taken?): pick another port") from exc
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address} (is the port taken?): pick another port")
    return server, port
