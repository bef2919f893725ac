"""Bulk order ingest through the cloud's real HTTP API, on SQLite and on PostgreSQL.

Starts a real cloud (`dockside-cloud serve`) per backend on a scratch database, creates one
warehouse, then POSTs /api/v1/orders in batches of 10,000 new orders over one keep-alive
connection and times from the first request to the last answer. Bodies are serialised before the
clock starts, so the figure is the cloud's, not the client's JSON encoder. Prints one JSON object:

    {"sqlite": {"orders", "seconds", "orders_per_s", "batch", "accepted"},
     "postgresql": {...} or {"skipped": "why"}, "goal": {...}}

PostgreSQL runs when --postgres URL (a server URL the bench may create a database on) or
$DOCKSIDE_TEST_POSTGRES_URL is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.offline_drain import scratch_database
from bench.stack import running_stack

BATCH = 10_000
GOAL = {"sqlite": 20_000, "postgresql": 15_000}


def _order(ref: str) -> dict[str, Any]:
    return {
        "order_ref": ref,
        "warehouse": "WH1",
        "service_level": "standard",
        "ship_to": {
            "name": "Ada Lovelace",
            "company": "",
            "street": "12 Dock Road",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
            "phone": "",
        },
        "lines": [{"sku": "SKU-1", "qty": 2}],
        "expected_weight_g": 1200,
        "value": {"amount": "49.90", "currency": "USD"},
    }


def run_backend(database_url: str | None, root: Path, total: int, backend: str) -> dict[str, Any]:
    """Ingest `total` new orders on one backend; returns its figures."""
    bodies = [
        json.dumps(
            {"orders": [_order(f"B-{start + i:08d}") for i in range(min(BATCH, total - start))]}
        ).encode()
        for start in range(0, total, BATCH)
    ]
    with running_stack(root / backend, database_url=database_url) as stack:
        stack.start_cloud()
        stack.admin_call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "Bench"})
        url = f"http://{stack.cloud.ready['http']}/api/v1/orders"
        headers = {"Authorization": f"Bearer {stack.admin_token}", "Content-Type": "application/json"}
        accepted = 0
        with httpx.Client(timeout=120) as client:
            started = time.perf_counter()
            for body in bodies:
                response = client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"ingest failed: {response.status_code} {response.text[:500]}")
                answer = response.json()
                if answer["errors"]:
                    raise SystemExit(f"orders refused: {answer['errors'][:3]}")
                accepted += len(answer["accepted"])
            seconds = time.perf_counter() - started
    return {
        "orders": total,
        "accepted": accepted,
        "seconds": round(seconds, 3),
        "orders_per_s": round(total / seconds),
        "batch": BATCH,
        "goal_orders_per_s": GOAL[backend],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders per backend (default 100,000)")
    parser.add_argument(
        "--postgres", default=os.environ.get("DOCKSIDE_TEST_POSTGRES_URL", ""), help="PostgreSQL server URL"
    )
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dockside-ingest-") as tmp:
        root = Path(tmp)
        with scratch_database(None, root) as url:
            result["sqlite"] = run_backend(url, root, args.orders, "sqlite")
        if args.postgres:
            with scratch_database(args.postgres, root) as url:
                result["postgresql"] = run_backend(url, root, args.orders, "postgresql")
        else:
            result["postgresql"] = {
                "skipped": "no PostgreSQL: pass --postgres URL or set DOCKSIDE_TEST_POSTGRES_URL"
            }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
