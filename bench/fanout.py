"""One template publish fanned out to N agents on real gRPC Watch streams: time until applied.

Starts a real cloud (`dockside-cloud serve`; SQLite, or PostgreSQL with `--postgres URL` in a
scratch database) and simulates a fleet the way it really is: every simulated agent has its own
identity (a one-time token traded through the real Enroll RPC), so the cloud checks its own
credential when its stream opens, and its own TCP connection (grpc would otherwise share one
connection among all channels of a process that have the same target and options, and every
stream would ride one HTTP/2 connection). All N streams are opened at the same moment, as after
a cloud restart; the bench fails if a single one is refused. Once the cloud reports every stream
open, one template version is published through the admin API and each agent's time from the
publish call to the change being received and its body decoded is measured. Each agent keeps
its stream open afterwards, as a real agent does (closing 5,000 streams while the cloud still
writes to the rest would be work no real publish meets); the bench closes them all at the end.
The fleet's heap is kept out of the garbage collector during the publish: one process plays
5,000 agents here, and one full collection of it would stall them all at once.

The floor: the same fleet against a bare grpc.aio server (the cloud's server options, no
database, no credential check) whose streams all get one pre-serialized message on a trigger.
On this 2-core machine most of the fan-out time is gRPC's own per-connection cost, in the
server and in the one client process that plays 5,000 agents; the floor shows how much.

Prints one JSON object: {"agents", "p50_ms", "p99_ms", "max_ms", "floor_p50_ms",
"floor_p99_ms", "open_s", "enroll_s", "database", ...}; `open_s` is how long the N
simultaneous opens took until the cloud served them all.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx

from bench.offline_drain import scratch_database
from bench.provision import enroll_fleet, mint_enrollment_tokens
from bench.stack import running_stack, wait_for
from cloud.storage.store import CloudStore
from cloud.sync.service import GRPC_SERVER_OPTIONS
from dockside.heap import freeze_startup_heap
from dockside.sync import bearer
from dockside.v1 import sync_pb2 as pb
from dockside.v1 import sync_pb2_grpc as pb_grpc
from edge_agent.sync.grpc_transport import CHANNEL_OPTIONS

# One connection per simulated agent, as each real agent runs on its own PC.
AGENT_CHANNEL_OPTIONS = (*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1))
TEMPLATE = {
    "language": "zpl",
    "source": "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }}^FS^XZ",
    "sample_data": {"order": {"order_ref": "SAMPLE-1"}},
    "width_dots": 812,
    "height_dots": 1218,
    "dpi": 203,
}
_GAUGE = re.compile(r"^dockside_cloud_watch_streams (\S+)$", re.MULTILINE)


def _open_streams(http: str) -> int:
    text = httpx.get(f"http://{http}/metrics", timeout=10).text
    found = _GAUGE.search(text)
    return int(float(found.group(1))) if found else 0


def _percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Fleet:
    """N simulated agents, each following its own stream until the published template arrives."""

    def __init__(
        self, target: str, credentials: list[str], after_revision: int, *, floor: bool = False
    ) -> None:
        self.target = target
        self.credentials = credentials
        self.after_revision = after_revision
        self.floor = floor
        self.arrived: list[float] = []
        self.settled = asyncio.Event()  # every agent has the published template, or one failed
        self.failures: collections.Counter[str] = collections.Counter()

    def _open(self, channel: grpc.aio.Channel, credential: str) -> Any:
        if self.floor:
            watch: grpc.aio.UnaryStreamMultiCallable[bytes, pb.WatchResponse] = channel.unary_stream(
                FLOOR_WATCH, response_deserializer=pb.WatchResponse.FromString
            )
            return watch(b"")
        return pb_grpc.SyncStub(channel).Watch(
            pb.WatchRequest(after_revision=self.after_revision), metadata=bearer(credential)
        )

    async def agent(self, credential: str) -> None:
        try:
            async with grpc.aio.insecure_channel(self.target, options=AGENT_CHANNEL_OPTIONS) as channel:
                call = self._open(channel, credential)
                async for item in call:
                    if item.HasField("change") and item.change.kind == "template_version":
                        json.loads(item.change.body)
                        self.arrived.append(time.perf_counter())
                        if len(self.arrived) == len(self.credentials):
                            self.settled.set()
                        # Like a real agent, it keeps its stream open for the next change; the
                        # bench ends every stream once all have the template.
                self.failures["the stream ended before the template came"] += 1
        except grpc.aio.AioRpcError as exc:
            self.failures[f"{exc.code().name}: {exc.details()}"] += 1
        self.settled.set()  # a stream that failed: the run is over

    async def run(
        self, opened: Callable[[], Awaitable[int]], publish: Callable[[], Awaitable[float]]
    ) -> dict[str, float]:
        """Open every stream at once, wait until the server has them all, publish, time arrivals."""
        started = time.perf_counter()
        tasks = [asyncio.create_task(self.agent(credential)) for credential in self.credentials]
        n = len(tasks)
        deadline = time.monotonic() + 120
        while (count := await opened()) < n:
            if self.failures or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{count} of {n} streams opened; refused: {self.failures.most_common(5) or 'none'}"
                )
            await asyncio.sleep(0.1)
        open_s = time.perf_counter() - started
        # This one process plays 5,000 agents, each of which really holds one stream in a process
        # of its own: keep the fleet's heap out of the collector, or one full collection of it
        # (~300 ms) would stall every simulated agent at once, which no real fleet does.
        freeze_startup_heap()
        try:
            published = await publish()
            await asyncio.wait_for(self.settled.wait(), 120)
        finally:
            gc.unfreeze()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.failures:
            raise RuntimeError(f"streams failed: {self.failures.most_common(5)}")
        latencies = sorted((at - published) * 1000 for at in self.arrived)
        return {
            "agents": n,
            "applied": len(latencies),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(_percentile(latencies, 0.99), 1),
            "max_ms": round(latencies[-1], 1),
            "open_s": round(open_s, 2),
        }


async def _cloud_fan_out(
    target: str, http: str, admin: httpx.Client, credentials: list[str], after: int
) -> dict[str, float]:
    async def opened() -> int:
        return await asyncio.to_thread(_open_streams, http)

    async def publish() -> float:
        response = await asyncio.to_thread(admin.post, "/api/v1/templates/fanout/versions", json=TEMPLATE)
        response.raise_for_status()
        published = time.perf_counter()
        answer = await asyncio.to_thread(admin.post, "/api/v1/templates/fanout/versions/1/publish")
        answer.raise_for_status()
        return published

    return await Fleet(target, credentials, after).run(opened, publish)


# -- the floor: bare grpc.aio, no database, no auth, one message serialized once ----------------

FLOOR_WATCH = "/dockside.bench.Floor/Watch"
_FLOOR_OPEN = "/dockside.bench.Floor/Open"
_FLOOR_FIRE = "/dockside.bench.Floor/Fire"


async def _serve_floor() -> None:
    """A grpc.aio server with the cloud's options whose streams wait for one trigger, then all
    get the same pre-serialized message: what the cloud's fan-out costs without the cloud."""
    fired = asyncio.Event()
    waiting = 0
    wire = pb.WatchResponse(
        change=pb.Change(
            revision=1, kind="template_version", key="fanout@1", body=json.dumps(TEMPLATE).encode()
        )
    ).SerializeToString()

    async def watch(_raw: bytes, _context: Any) -> AsyncIterator[bytes]:
        nonlocal waiting
        waiting += 1
        await fired.wait()
        yield wire
        await asyncio.Event().wait()  # stays open, as a Watch stream does, until the client goes

    async def open_count(_raw: bytes, _context: Any) -> bytes:
        return str(waiting).encode()

    async def fire(_raw: bytes, _context: Any) -> bytes:
        fired.set()
        return b""

    server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
        "Open": grpc.unary_unary_rpc_method_handler(open_count),
        "Fire": grpc.unary_unary_rpc_method_handler(fire),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("dockside.bench.Floor", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    freeze_startup_heap()  # as the cloud does once it serves
    print(port, flush=True)
    await server.wait_for_termination()


def _floor(n: int) -> dict[str, float]:
    """The same fleet against the bare server, in its own process as the cloud is."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.fanout", "--serve-floor"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        target = f"127.0.0.1:{server.stdout.readline().strip()}"

        async def fan_out() -> dict[str, float]:
            async with grpc.aio.insecure_channel(target) as control:
                count: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = control.unary_unary(_FLOOR_OPEN)
                fire: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = control.unary_unary(_FLOOR_FIRE)

                async def opened() -> int:
                    return int(await count(b""))

                async def publish() -> float:
                    published = time.perf_counter()
                    await fire(b"")
                    return published

                return await Fleet(target, [""] * n, 0, floor=True).run(opened, publish)

        return asyncio.run(fan_out())
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5_000, help="agents, each with its own stream (5000)")
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on (a scratch database is made in it)")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        asyncio.run(_serve_floor())
        return
    with tempfile.TemporaryDirectory(prefix="dockside-fanout-") as folder:
        root = Path(folder)
        with scratch_database(args.postgres, root) as url, running_stack(root, database_url=url) as stack:
            cloud = stack.start_cloud()
            target, http = cloud.ready["grpc"], cloud.ready["http"]
            stack.admin_call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "One"})
            enrolling = time.perf_counter()
            tokens = mint_enrollment_tokens(url, "WH1", args.agents)
            credentials = [agent.credential for agent in asyncio.run(enroll_fleet(target, tokens))]
            enroll_s = time.perf_counter() - enrolling
            store = CloudStore.open(url, create=False, listen=False)
            after = store.current_revision()
            store.close()
            result = asyncio.run(_cloud_fan_out(target, http, stack.admin, credentials, after))
            wait_for(lambda: _open_streams(http) == 0, timeout=60, what="streams to close")
    floor = _floor(args.agents)
    database = "postgresql" if args.postgres else "sqlite"
    print(
        json.dumps(
            {
                **result,
                "floor_p50_ms": floor["p50_ms"],
                "floor_p99_ms": floor["p99_ms"],
                "enroll_s": round(enroll_s, 1),
                "database": database,
            }
        )
    )


if __name__ == "__main__":
    main()
