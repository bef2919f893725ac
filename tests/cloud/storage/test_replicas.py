"""Several cloud replicas on one PostgreSQL wake each other with LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from cloud.access.principals import Role, create_api_token
from cloud.server import run_cloud
from cloud.storage.notifier import AgentRevocations
from cloud.storage.pg_notifier import PostgresRevisionNotifier, channels_for_schema
from cloud.storage.store import CloudStore
from dockside.v1 import sync_pb2, sync_pb2_grpc
from tests.cloud.conftest import HEARTBEAT_S, TEMPLATE, Agent

pytestmark = [pytest.mark.postgres]  # needs PostgreSQL: `make test` points it at the local one


@pytest.fixture
def pg_schema(postgres_database: str) -> Iterator[tuple[str, str]]:
    """A fresh schema in the test database: (its URL for the stores, its name)."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        url = make_url(postgres_database).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False), name
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def pg_url(pg_schema: tuple[str, str]) -> str:
    return pg_schema[0]


def _notifier(pg_schema: tuple[str, str], revocations: AgentRevocations) -> PostgresRevisionNotifier:
    url, schema_name = pg_schema
    store = CloudStore.open(url, listen=False)
    dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    store.close()
    # A poll far longer than the test's wait: only a NOTIFY can wake it in time.
    notifier = PostgresRevisionNotifier(dsn, channels_for_schema(schema_name), revocations, poll_s=60)
    notifier.start()
    return notifier


def test_a_revision_announced_on_one_replica_wakes_the_other(pg_schema: tuple[str, str]) -> None:
    one, other = _notifier(pg_schema, AgentRevocations()), _notifier(pg_schema, AgentRevocations())
    try:

        async def wait() -> bool:
            return await other.wait_past(0, 30)

        waiter = threading.Thread(target=lambda: results.append(asyncio.run(wait())))
        results: list[bool] = []
        waiter.start()
        for revision in range(1, 51):  # a burst of commits: coalesced, the highest arrives
            one.advanced(revision)
        waiter.join(timeout=40)
        assert results == [True]
        deadline = threading.Event()
        for _ in range(100):
            if other.latest == 50:
                break
            deadline.wait(0.05)
        assert other.latest == 50
    finally:
        one.close()
        other.close()


def test_closing_ends_the_listening_thread_though_its_next_poll_is_a_minute_away(
    pg_schema: tuple[str, str],
) -> None:
    notifier = _notifier(pg_schema, AgentRevocations())
    threads = list(notifier._threads)
    assert [thread.is_alive() for thread in threads] == [True, True]
    notifier.close()  # waits at most 5 s per thread: the 60 s poll must not keep it
    assert [thread.is_alive() for thread in threads] == [False, False]
    notifier.close()  # a second close is harmless


def _running(store: CloudStore) -> Iterator[dict[str, str]]:
    ready: queue.Queue[Any] = queue.Queue()
    control: dict[str, Any] = {}

    async def main() -> None:
        control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await run_cloud(
            store,
            http="127.0.0.1:0",
            grpc="127.0.0.1:0",
            stop=control["stop"],
            on_ready=ready.put,
            log_level="warning",
            heartbeat_s=30,  # no heartbeat re-read: only the notifier wakes the stream
        )

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    addresses = ready.get(timeout=30)
    try:
        yield addresses
    finally:
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=30)
        assert not thread.is_alive()


def test_a_template_published_on_replica_a_reaches_an_agent_on_replica_b(pg_url: str) -> None:
    assert HEARTBEAT_S < 30
    store_a, store_b = CloudStore.open(pg_url), CloudStore.open(pg_url)
    try:
        for a in _running(store_a):
            for b in _running(store_b):
                token = create_api_token(store_a, name="tests", role=Role.ADMIN)
                api = httpx.Client(
                    base_url=f"http://{a['http']}", headers={"Authorization": f"Bearer {token}"}, timeout=30
                )
                assert api.post("/api/v1/warehouses", json={"code": "WH1", "name": "One"}).status_code == 201
                enrollment = api.post("/api/v1/warehouses/WH1/enrollment-tokens", json={"ttl_s": 600}).json()
                channel = grpc.insecure_channel(b["grpc"])
                stub = sync_pb2_grpc.SyncStub(channel)
                answer = stub.Enroll(
                    sync_pb2.EnrollRequest(token=enrollment["token"], hostname="pc", agent_version="1"),
                    timeout=10,
                )
                agent = Agent(answer.agent_id, answer.credential, answer.warehouse, stub)
                stream = agent.watch(store_b.current_revision(), timeout=25)
                assert api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE).status_code == 201
                assert api.post("/api/v1/templates/shipping-4x6/versions/1/publish").status_code == 200
                keys = []
                for item in stream:
                    if item.HasField("change"):
                        keys.append(item.change.key)
                        if item.change.kind == "template_version":
                            break
                assert "shipping-4x6@1" in keys
                # Revoked through replica A: the stream on replica B ends at once.
                revoked_stream = agent.watch(store_b.current_revision(), timeout=25)
                assert api.post(f"/api/v1/agents/{agent.agent_id}/revoke").status_code == 200
                with pytest.raises(grpc.RpcError) as ended:
                    for _ in revoked_stream:
                        pass
                assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
                stream.cancel()
                channel.close()
                api.close()
    finally:
        store_a.close()
        store_b.close()
