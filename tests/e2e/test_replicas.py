"""On PostgreSQL: the pack path end to end, and two cloud replicas sharing one database.

Each test runs in its own scratch database on DOCKSIDE_TEST_POSTGRES_URL (`make test` sets it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.demo_data import demo_orders
from bench.offline_drain import scratch_database
from bench.provision import provision
from bench.stack import Stack, running_stack, wait_for
from tests.cloud.conftest import required_postgres_url

pytestmark = [pytest.mark.postgres]  # needs PostgreSQL: `make test` points it at the local one

TEMPLATE = {
    "language": "zpl",
    "source": "^XA^CI28^FO50,50^A0N,40,40^FH^FDREPLICA {{ order.order_ref }}^FS^XZ",
    "sample_data": {"order": {"order_ref": "SAMPLE-1"}},
    "width_dots": 812,
    "height_dots": 1218,
    "dpi": 203,
}


@pytest.fixture
def pg_stack(tmp_path: Path) -> Iterator[Stack]:
    with (
        scratch_database(required_postgres_url(), tmp_path) as url,
        running_stack(tmp_path, database_url=url) as stack,
    ):
        yield stack


def test_the_pack_path_runs_on_postgresql(pg_stack: Stack) -> None:
    stack = pg_stack
    stack.start_cloud()
    stack.start_printer(serial="ZD421-PG")
    stack.start_scale()
    stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
    provision(stack, order_count=5, order_prefix="PG")
    stack.enroll_agent("WH1")
    stack.start_agent()
    agent = stack.agent_client()
    try:
        wait_for(lambda: agent.get("/api/v1/orders/PG-0005").status_code == 200, timeout=30, what="orders")
        answer = agent.post(
            "/api/v1/pack", json={"order_ref": "PG-0001", "station": "S1", "request_id": "pg-1"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "sent"
        assert len(stack.control("printer", "GET", "/labels")) == 1

        def packed_in_cloud() -> bool:
            kinds = [event["kind"] for event in stack.admin_call("GET", "/api/v1/orders/PG-0001")["events"]]
            return kinds.count("order_packed") == 1 and kinds.count("label_printed") == 1

        wait_for(packed_in_cloud, timeout=30, what="the pack events to reach the cloud")
    finally:
        agent.close()


def test_a_template_published_on_one_replica_reaches_an_agent_on_the_other(pg_stack: Stack) -> None:
    stack = pg_stack
    replica_a = stack.start_cloud(name="cloud")
    admin_a = httpx.Client(
        base_url=f"http://{replica_a.ready['http']}",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=30,
    )
    replica_b = stack.start_cloud(name="cloud-b")
    try:
        stack.start_printer(serial="ZD421-PGB")
        stack.start_scale()
        provision(stack, order_count=2, order_prefix="RB")
        token = stack.admin_call("POST", "/api/v1/warehouses/WH1/enrollment-tokens", {"ttl_s": 600})["token"]
        stack.run(
            [
                "dockside-agent",
                "enroll",
                "--cloud",
                replica_b.ready["grpc"],
                "--token",
                token,
                "--data-dir",
                str(stack.agent_dir("agent")),
            ]
        )
        stack.start_agent()
        agent = stack.agent_client()
        wait_for(lambda: agent.get("/api/v1/orders/RB-0002").status_code == 200, timeout=30, what="orders")
        # Published through replica A; the agent streams from replica B.
        assert admin_a.post("/api/v1/templates/replica-test/versions", json=TEMPLATE).status_code == 201
        published = admin_a.post("/api/v1/templates/replica-test/versions/1/publish")
        assert published.status_code == 200, published.text
        head = admin_a.get("/healthz").json()["revision"]
        wait_for(
            lambda: agent.get("/api/v1/status").json()["revision"] >= head,
            timeout=10,
            what="the agent on replica B to apply the publish made on replica A",
        )
        late = demo_orders(1, prefix="VIA-A")[0]
        assert admin_a.post("/api/v1/orders", json={"orders": [late]}).status_code == 200
        wait_for(lambda: agent.get("/api/v1/orders/VIA-A-0001").status_code == 200, timeout=10, what="order")
        agent.close()
    finally:
        admin_a.close()
