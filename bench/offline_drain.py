"""An agent back online after a long outage: 100,000 queued events delivered, none lost or doubled.

Starts a real cloud (`dockside-cloud serve`, SQLite by default, or PostgreSQL with
`--postgres URL`: a scratch database is created in it and dropped afterwards), enrolls an agent,
queues 100,000 events in a real agent outbox while the cloud is down, starts the cloud again and
drains the outbox with the agent's own OutboxSender over gRPC. Then compares the event ids the
cloud stored with the ids queued. Prints one JSON object:
{"events", "seconds", "lost", "duplicated", "database", ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.stack import Stack, restartable_address, running_stack
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.sync import EventKind
from dockside.v1 import sync_pb2 as pb
from edge_agent.metrics import AgentMetrics
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox
from edge_agent.sync import GrpcTransport
from edge_agent.sync.link import CloudLink
from edge_agent.sync.outbox_sender import OutboxSender

EVENTS = 100_000
ORDERS = 1_000


@contextmanager
def scratch_database(postgres_url: str | None, root: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file under `root`, or a new PostgreSQL database dropped after."""
    if not postgres_url:
        yield f"sqlite:///{root / 'cloud.db'}"
        return
    base = make_url(postgres_url).set(drivername="postgresql")
    name = f"dockside_bench_{uuid.uuid4().hex[:10]}"
    admin = base.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def enroll(stack: Stack, warehouse: str) -> pb.EnrollResponse:
    """A new agent identity for `warehouse`, through the real Enroll RPC."""
    token = stack.admin_call("POST", f"/api/v1/warehouses/{warehouse}/enrollment-tokens", {"ttl_s": 600})[
        "token"
    ]

    async def call() -> pb.EnrollResponse:
        transport = GrpcTransport(stack.cloud.ready["grpc"])
        try:
            return await transport.enroll(
                pb.EnrollRequest(token=token, hostname="bench", agent_version="bench")
            )
        finally:
            await transport.close()

    return asyncio.run(call())


def _order(ref: str) -> dict[str, object]:
    return {
        "order_ref": ref,
        "warehouse": "WH1",
        "service_level": "standard",
        "ship_to": {"name": "A", "street": "1 Dock Rd", "city": "X", "postal_code": "1", "country": "US"},
        "lines": [{"sku": "SKU-1", "qty": 1}],
        "expected_weight_g": 1000,
    }


def _queue(outbox_store: Store, outbox: Outbox) -> list[str]:
    ids = []
    with outbox_store.atomic():
        for i in range(EVENTS):
            ids.append(
                outbox.record(
                    EventKind.WEIGHT_CAPTURED,
                    {"grams": 1000 + i % 7},
                    order_ref=f"D-{i % ORDERS:05d}",
                    station="S1",
                )
            )
    return ids


async def _drain(outbox: Outbox, target: str, credential: str) -> float:
    transport = GrpcTransport(target, credential)
    sender = OutboxSender(outbox, transport, CloudLink(), AgentMetrics())
    started = time.perf_counter()
    task = asyncio.create_task(sender.run())
    try:
        # Polls whether anything is left (one row read), not how much: counting 100,000 rows
        # every 50 ms on the sender's own loop would slow the drain it measures.
        while outbox.peek(1):
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL to run on (a scratch database is made in it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockside-drain-") as folder:
        root = Path(folder)
        with scratch_database(args.postgres, root) as url, running_stack(root, database_url=url) as stack:
            cloud = stack.start_cloud(grpc=restartable_address())  # restarted on it after the outage
            grpc_address = cloud.ready["grpc"]
            stack.admin_call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "One"})
            stack.admin_call(
                "POST", "/api/v1/orders", {"orders": [_order(f"D-{i:05d}") for i in range(ORDERS)]}
            )
            identity = enroll(stack, "WH1")
            cloud.stop()  # the outage: events pile up in the agent's outbox meanwhile
            edge = Store.open(root / "agent")
            outbox = Outbox(edge)
            queued = _queue(edge, outbox)
            stack.start_cloud(grpc=grpc_address)
            seconds = asyncio.run(_drain(outbox, grpc_address, identity.credential))
            store = CloudStore.open(url, create=False, listen=False)
            try:
                events = schema.order_events
                with store.read() as conn:
                    stored = [
                        row[0]
                        for row in conn.execute(
                            select(events.c.event_id).where(events.c.agent_id == identity.agent_id)
                        )
                    ]
                    distinct = conn.execute(
                        select(func.count(func.distinct(events.c.event_id))).where(
                            events.c.agent_id == identity.agent_id
                        )
                    ).scalar_one()
            finally:
                store.close()
            dead = outbox.dead_letter_count()
            edge.conn.close()
    print(
        json.dumps(
            {
                "events": len(queued),
                "seconds": round(seconds, 3),
                "lost": len(set(queued) - set(stored)),
                "duplicated": len(stored) - int(distinct),
                "dead_letters": dead,
                "events_per_s": round(len(queued) / seconds),
                "database": "postgresql" if args.postgres else "sqlite",
            }
        )
    )


if __name__ == "__main__":
    main()
