"""Real gRPC Sync servers for the agent's tests, answering from an in-memory cloud.

Two flavours over the same `MemoryTransport` state, both on ephemeral loopback ports and both
checking the bearer credential on every RPC but Enroll, as the contract says:

- `serving(cloud)`: the generated servicer on a `grpc.aio` server in the caller's event loop,
  for tests whose client runs on that loop too (grpc.aio keeps per-process state that does not
  like several event loops in several threads).
- `ThreadedGrpcCloud`: a classic thread-pool `grpc.server`, for tests that drive a
  `dockside-agent` subprocess from plain test code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio

from dockside.errors import AuthError, SyncError
from dockside.sync import AUTH_METADATA_KEY
from dockside.v1 import sync_pb2 as pb
from dockside.v1 import sync_pb2_grpc as pb_grpc
from edge_agent.sync import MemoryTransport

UNKNOWN_CREDENTIAL = "unknown agent credential: enroll again"


def _credential_ok(cloud: MemoryTransport, metadata: Any) -> bool:
    header = {key: str(value) for key, value in metadata or ()}.get(AUTH_METADATA_KEY, "")
    return header.startswith("Bearer ") and header.removeprefix("Bearer ") in cloud.credentials


class MemoryServicer(pb_grpc.SyncServicer):
    """The Sync service (grpc.aio) answering from a MemoryTransport."""

    def __init__(self, cloud: MemoryTransport) -> None:
        self.cloud = cloud
        self.metadata_seen: list[dict[str, str]] = []

    async def _authenticate(self, context: Any) -> None:
        metadata = context.invocation_metadata()
        self.metadata_seen.append({key: str(value) for key, value in metadata or ()})
        if not _credential_ok(self.cloud, metadata):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNKNOWN_CREDENTIAL)

    async def Enroll(self, request, context):  # type: ignore[no-untyped-def]
        try:
            return await self.cloud.enroll(request)
        except AuthError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)

    async def Watch(self, request, context):  # type: ignore[no-untyped-def, override]
        await self._authenticate(context)
        try:
            async for item in self.cloud.watch(request.after_revision):
                yield item
        except SyncError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)

    async def PushEvents(self, request, context):  # type: ignore[no-untyped-def]
        await self._authenticate(context)
        try:
            return await self.cloud.push_events(request.events)
        except SyncError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)

    async def ReportStatus(self, request, context):  # type: ignore[no-untyped-def]
        await self._authenticate(context)
        return await self.cloud.report_status(request)


@contextlib.asynccontextmanager
async def serving(
    cloud: MemoryTransport, port: int = 0, *, tls: grpc.ServerCredentials | None = None
) -> AsyncIterator[tuple[MemoryServicer, int]]:
    """A grpc.aio Sync server on this loop (over TLS with `tls`); yields the servicer and the bound port."""
    servicer = MemoryServicer(cloud)
    server = grpc.aio.server()
    pb_grpc.add_SyncServicer_to_server(servicer, server)
    address = f"127.0.0.1:{port}"
    bound = server.add_secure_port(address, tls) if tls is not None else server.add_insecure_port(address)
    await server.start()
    try:
        yield servicer, bound
    finally:
        await server.stop(grace=None)


class BlockingServicer(pb_grpc.SyncServicer):
    """The same service for a thread-pool server: each RPC drives the memory cloud on a private loop."""

    def __init__(self, cloud: MemoryTransport) -> None:
        self.cloud = cloud

    def _check(self, context: Any) -> None:
        if not _credential_ok(self.cloud, context.invocation_metadata()):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, UNKNOWN_CREDENTIAL)

    def Enroll(self, request, context):  # type: ignore[no-untyped-def]
        try:
            return asyncio.run(self.cloud.enroll(request))
        except AuthError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)

    def Watch(self, request, context) -> Iterator[pb.WatchResponse]:  # type: ignore[no-untyped-def, override]
        self._check(context)
        loop = asyncio.new_event_loop()
        stream = self.cloud.watch(request.after_revision)
        try:
            while context.is_active():
                step = loop.create_task(anext(stream))  # type: ignore[arg-type]
                while not step.done() and context.is_active():
                    loop.run_until_complete(asyncio.wait({step}, timeout=0.2))
                if not step.done():
                    step.cancel()
                    break
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                except SyncError as exc:
                    context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
                yield item
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(stream.aclose())
            loop.close()

    def PushEvents(self, request, context):  # type: ignore[no-untyped-def]
        self._check(context)
        try:
            return asyncio.run(self.cloud.push_events(request.events))
        except SyncError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)

    def ReportStatus(self, request, context):  # type: ignore[no-untyped-def]
        self._check(context)
        return asyncio.run(self.cloud.report_status(request))


class ThreadedGrpcCloud:
    """A thread-pool gRPC server around `cloud`; `start()` binds, `stop()` ends it."""

    def __init__(self, cloud: MemoryTransport) -> None:
        self.cloud = cloud
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> ThreadedGrpcCloud:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_SyncServicer_to_server(BlockingServicer(self.cloud), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port if port is None else port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(10)
            self._server = None
