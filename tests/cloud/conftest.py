"""Fixtures for the cloud: a database per test (SQLite, and PostgreSQL when configured), and a
real running cloud (uvicorn + grpc.aio on ephemeral ports) driven through httpx and gRPC stubs."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from cloud.access.principals import Role, create_api_token
from cloud.server import run_cloud
from cloud.storage.store import CloudStore
from dockside.sync import bearer
from dockside.v1 import sync_pb2, sync_pb2_grpc

POSTGRES_URL = os.environ.get("DOCKSIDE_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
HEARTBEAT_S = 0.3
# One TLS context for the suite's HTTP clients: httpx builds one per client otherwise, loading the
# CA bundle each time (about 20 ms), though these clients speak plain HTTP to loopback.
CLIENT_TLS = ssl.create_default_context()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One scratch PostgreSQL database for the session (each test gets its own schema in it)."""
    base = make_url(required_postgres_url())
    name = f"dockside_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def required_postgres_url() -> str:
    """The test PostgreSQL's URL; a test that needs one fails (never skips) without it."""
    if not POSTGRES_URL:
        pytest.fail(
            "this test needs PostgreSQL: set DOCKSIDE_TEST_POSTGRES_URL "
            "(`make test` sets postgresql://postgres@127.0.0.1:5432/test)"
        )
    return POSTGRES_URL


@contextmanager
def fresh_database(backend: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in `folder`, or a new PostgreSQL schema dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'cloud.db'}"
        return
    database = request.getfixturevalue("postgres_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # Every connection of the store works in the test's own schema.
        yield (
            make_url(database)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    with fresh_database(request.param, tmp_path, request) as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per worker, closed (its WAL folded in) and never opened again."""
    path = tmp_path_factory.mktemp("migrated") / "cloud.db"
    CloudStore.open(f"sqlite:///{path}").close()
    return path


@dataclass(frozen=True)
class _Statement:
    sql: str
    parameters: Any
    many: bool


@pytest.fixture(scope="session")
def postgres_migration(postgres_database: str) -> list[_Statement]:
    """Every statement that migrating an empty PostgreSQL schema runs, recorded once per worker
    while it migrates a schema of its own. Played into a test's new schema, they build it as the
    migration does (the statements name no schema: they work in the search_path's), in half the
    time that running Alembic's scripts again takes."""
    schema = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_database).update_query_dict({"options": f"-csearch_path={schema}"})
    recorded: list[_Statement] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if conn.engine.url.query.get("options") == url.query["options"]:  # not another test's thread
            recorded.append(_Statement(statement, parameters or None, many))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        CloudStore.open(url.render_as_string(hide_password=False), listen=False).close()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return recorded


def _play(statements: list[_Statement], database_url: str) -> None:
    """Run `statements` in one transaction on the schema `database_url`'s search_path names."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        for statement in statements:
            if statement.many:
                cursor.executemany(statement.sql, statement.parameters)
            else:
                cursor.execute(statement.sql, statement.parameters)


@contextmanager
def migrated_store(database_url: str, request: pytest.FixtureRequest) -> Iterator[CloudStore]:
    """The database migrated and opened (opening checks it is at the newest migration). A SQLite
    file starts as a copy of one migrated once, a PostgreSQL schema as the statements of one
    migration played again: the same result as a migration without its third of a second per
    test. tests/cloud/storage/test_migrations.py runs the migrations themselves."""
    if database_url.startswith("sqlite:///"):
        target = Path(database_url.removeprefix("sqlite:///"))
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), target)
        target.chmod(0o600)
    else:
        _play(request.getfixturevalue("postgres_migration"), database_url)
    opened = CloudStore.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def store(request: pytest.FixtureRequest, database_url: str) -> Iterator[CloudStore]:
    with migrated_store(database_url, request) as opened:
        yield opened


def order(ref: str, warehouse: str = "WH1", **overrides: Any) -> dict[str, Any]:
    """A valid order in the contract's shape."""
    body: dict[str, Any] = {
        "order_ref": ref,
        "warehouse": warehouse,
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
    body.update(overrides)
    return body


STATION = {
    "code": "S1",
    "name": "Packing 1",
    "printers": [
        {
            "id": "ZD421-1",
            "role": "label",
            "language": "zpl",
            "host": "127.0.0.1",
            "port": 9100,
            "model": "ZD421",
        }
    ],
    "scale": {"protocol": "mt-sics", "port": "/dev/pts/3", "baudrate": 9600},
}

TEMPLATE = {
    "language": "zpl",
    "source": "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }}^FS^XZ",
    "sample_data": {"order": {"order_ref": "SAMPLE-1"}},
    "width_dots": 812,
    "height_dots": 1218,
    "dpi": 203,
}


@dataclass
class Agent:
    """An enrolled agent: its identity and a stub that sends its credential."""

    agent_id: str
    credential: str
    warehouse: str
    stub: sync_pb2_grpc.SyncStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.credential)

    def watch(self, after_revision: int, timeout: float = 20) -> Any:
        return self.stub.Watch(
            sync_pb2.WatchRequest(after_revision=after_revision), metadata=self.metadata, timeout=timeout
        )

    def push(self, *events: sync_pb2.EdgeEvent) -> sync_pb2.PushEventsResponse:
        return self.stub.PushEvents(
            sync_pb2.PushEventsRequest(events=list(events)), metadata=self.metadata, timeout=20
        )


@dataclass
class RunningCloud:
    """A cloud serving on real sockets, with an admin HTTP client and a gRPC channel."""

    store: CloudStore
    http_address: str
    grpc_address: str
    token: str
    api: httpx.Client
    channel: grpc.Channel
    stub: sync_pb2_grpc.SyncStub
    _closing: list[Any] = field(default_factory=list)

    def put_warehouse(self, code: str = "WH1") -> None:
        response = self.api.post("/api/v1/warehouses", json={"code": code, "name": f"Warehouse {code}"})
        assert response.status_code in (200, 201), response.text

    def enrollment_token(self, warehouse: str = "WH1", ttl_s: int = 600) -> str:
        response = self.api.post(f"/api/v1/warehouses/{warehouse}/enrollment-tokens", json={"ttl_s": ttl_s})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def enroll(self, warehouse: str = "WH1") -> Agent:
        answer = self.stub.Enroll(
            sync_pb2.EnrollRequest(
                token=self.enrollment_token(warehouse), hostname="pc-1", agent_version="0.1.0"
            ),
            timeout=20,
        )
        return Agent(answer.agent_id, answer.credential, answer.warehouse, self.stub)

    def ingest(self, *orders: dict[str, Any]) -> dict[str, Any]:
        response = self.api.post("/api/v1/orders", json={"orders": list(orders)})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@contextmanager
def serving(store: CloudStore, heartbeat_s: float = HEARTBEAT_S) -> Iterator[RunningCloud]:
    """The admin API and the Sync service over `store` in a thread's event loop, as `serve` runs them."""
    ready: queue.Queue[Any] = queue.Queue()
    control: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        control["loop"], control["stop"] = asyncio.get_running_loop(), stop
        await run_cloud(
            store,
            http="127.0.0.1:0",
            grpc="127.0.0.1:0",
            stop=stop,
            on_ready=ready.put,
            log_level="warning",
            heartbeat_s=heartbeat_s,
        )

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            ready.put(exc)

    thread = threading.Thread(target=thread_main, name="cloud-under-test", daemon=True)
    thread.start()
    addresses = ready.get(timeout=30)
    if isinstance(addresses, BaseException):
        raise addresses
    token = create_api_token(store, name="tests", role=Role.ADMIN)
    api = httpx.Client(
        base_url=f"http://{addresses['http']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=CLIENT_TLS,
    )
    channel = grpc.insecure_channel(addresses["grpc"])
    running = RunningCloud(
        store, addresses["http"], addresses["grpc"], token, api, channel, sync_pb2_grpc.SyncStub(channel)
    )
    try:
        yield running
    finally:
        api.close()
        channel.close()
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the cloud did not stop"


@pytest.fixture
def cloud(store: CloudStore) -> Iterator[RunningCloud]:
    """The admin API and the Sync service running in a thread's event loop, as `serve` runs them."""
    with serving(store) as running:
        yield running
