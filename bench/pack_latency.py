"""Scan to label bytes at the mock printer, through the agent's real local API, warm.

Starts a real stack (cloud, mock printer, mock scale, one agent) in a temporary folder, packs
1,000 orders one after another over one keep-alive HTTP connection, and measures each round
trip. The floor is the same server's /healthz over the same connection, measured interleaved with
the packs so machine noise hits both alike. Prints one JSON object.
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.provision import provision
from bench.stack import running_stack, wait_for

PACKS = 1000
WARMUP = 100


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dockside-bench-") as tmp, running_stack(Path(tmp)) as stack:
        stack.start_cloud()
        stack.start_printer()
        stack.start_scale()
        stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
        orders = provision(stack, order_count=PACKS + WARMUP, order_prefix="BENCH")
        stack.enroll_agent("WH1")
        agent = stack.start_agent()
        host, port = agent.ready["http"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)

        def call(method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, bytes]:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"content-type": "application/json"} if payload else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()

        last_ref = orders[-1]["order_ref"]

        def synced() -> bool:
            # The last order of the ingest is in the agent's cache once a pack of it stops saying 404.
            status, _ = call("GET", f"/api/v1/orders/{last_ref}")
            return status == 200

        wait_for(synced, timeout=60, what="the agent to sync the bench orders")
        floor: list[float] = []
        packs: list[float] = []
        started = time.perf_counter()
        for n, order in enumerate(orders):
            t0 = time.perf_counter()
            status, _ = call("GET", "/healthz")
            t1 = time.perf_counter()
            status_pack, body = call(
                "POST",
                "/api/v1/pack",
                {"order_ref": order["order_ref"], "station": "S1", "request_id": f"bench-{n}"},
            )
            t2 = time.perf_counter()
            if status != 200 or status_pack != 200:
                raise RuntimeError(f"pack {order['order_ref']} failed: {status_pack} {body!r}")
            if n == WARMUP - 1:
                started = time.perf_counter()
            if n >= WARMUP:
                floor.append((t1 - t0) * 1000)
                packs.append((t2 - t1) * 1000)
        elapsed = time.perf_counter() - started
        labels = wait_for(
            lambda: (
                len(stack.control("printer", "GET", "/labels")) >= len(orders)
                and stack.control("printer", "GET", "/labels")
            ),
            timeout=30,
            what="every label at the mock printer",
        )
        conn.close()

    result = {
        "packs": len(packs),
        "p50_ms": round(statistics.median(packs), 3),
        "p99_ms": round(_percentile(packs, 0.99), 3),
        "packs_per_s": round(len(packs) / (sum(packs) / 1000), 1),
        "wall_s_with_floor_probes": round(elapsed, 2),
        "floor_p50_ms": round(statistics.median(floor), 3),
        "floor_p99_ms": round(_percentile(floor, 0.99), 3),
        "p50_over_floor_ms": round(statistics.median(packs) - statistics.median(floor), 3),
        "labels_at_printer": len(labels),
        "goal": {"p50_ms": 1.5, "p99_ms": 3.0, "p50_over_floor_ms": 0.5},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
