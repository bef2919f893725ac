"""One template publish fanned out to N agents on real gRPC Watch streams: time until applied.

Starts a real cloud (`dockside-cloud serve`; SQLite, or PostgreSQL with `--postgres URL` in a
scratch database), enrolls agents, opens N Watch streams (one gRPC channel, so one TCP
connection, per simulated agent; credentials are shared round-robin among at most 100 enrolled
agents to keep setup short), waits until the cloud reports every stream open, publishes one
template version through the admin API and measures, per agent, the time from the publish call
to the change being received and its body decoded. Prints one JSON object:
{"agents", "p50_ms", "p99_ms", "max_ms", "database", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import grpc.aio
import httpx

from bench.offline_drain import enroll, scratch_database
from bench.stack import running_stack, wait_for
from cloud.store import CloudStore
from dockside.sync import bearer
from dockside.v1 import sync_pb2 as pb
from dockside.v1 import sync_pb2_grpc as pb_grpc
from edge_agent.sync.grpc_transport import CHANNEL_OPTIONS

ENROLLED = 100
OPEN_WAVE = 100
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


FAILURES: list[str] = []


async def _agent(
    target: str, credential: str, after: int, opened: asyncio.Event, arrived: list[float]
) -> None:
    try:
        await _watch(target, credential, after, opened, arrived)
    except grpc.aio.AioRpcError as exc:
        FAILURES.append(f"{exc.code().name}: {exc.details()}")
    except asyncio.CancelledError:
        pass


async def _watch(
    target: str, credential: str, after: int, opened: asyncio.Event, arrived: list[float]
) -> None:
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = pb_grpc.SyncStub(channel).Watch(
            pb.WatchRequest(after_revision=after), metadata=bearer(credential)
        )
        async for item in call:
            if item.HasField("change") and item.change.kind == "template_version":
                json.loads(item.change.body)
                arrived.append(time.perf_counter())
                call.cancel()
                return
            opened.set()


async def _fan_out(
    target: str, http: str, admin: httpx.Client, credentials: list[str], n: int, after: int
) -> dict:
    arrived: list[float] = []
    opened = asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(
            asyncio.create_task(_agent(target, credentials[i % len(credentials)], after, opened, arrived))
        )
        if i % OPEN_WAVE == OPEN_WAVE - 1:
            # A fleet reconnects spread out by its jittered backoff, not in one instant.
            await asyncio.sleep(0.1)
    deadline = time.monotonic() + 120
    while await asyncio.to_thread(_open_streams, http) < n:
        if time.monotonic() > deadline:
            print(collections.Counter(FAILURES).most_common(5))
            raise TimeoutError(f"only {await asyncio.to_thread(_open_streams, http)} of {n} streams opened")
        await asyncio.sleep(0.2)
    response = await asyncio.to_thread(admin.post, "/api/v1/templates/fanout/versions", json=TEMPLATE)
    response.raise_for_status()
    published = time.perf_counter()
    (await asyncio.to_thread(admin.post, "/api/v1/templates/fanout/versions/1/publish")).raise_for_status()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = sorted((at - published) * 1000 for at in arrived)
    return {
        "agents": n,
        "applied": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))], 1),
        "max_ms": round(latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5_000, help="how many Watch streams (default 5000)")
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on (a scratch database is made in it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockside-fanout-") as folder:
        root = Path(folder)
        with scratch_database(args.postgres, root) as url, running_stack(root, database_url=url) as stack:
            cloud = stack.start_cloud()
            stack.admin_call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "One"})
            credentials = [enroll(stack, "WH1").credential for _ in range(min(ENROLLED, args.agents))]
            store = CloudStore.open(url, create=False, listen=False)
            after = store.current_revision()
            store.close()
            result = asyncio.run(
                _fan_out(
                    cloud.ready["grpc"], cloud.ready["http"], stack.admin, credentials, args.agents, after
                )
            )
            wait_for(lambda: _open_streams(cloud.ready["http"]) == 0, timeout=30, what="streams to close")
    result["database"] = "postgresql" if args.postgres else "sqlite"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
