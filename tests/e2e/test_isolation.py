"""Tenant and warehouse isolation, and every refusal, against a real `dockside-cloud serve` process.

tests/cloud/sync/test_sync_security.py checks these rules one at a time on a cloud running inside the
test process. This file drives the real console script over its real sockets, as a fleet does:
agents of two warehouses and of two tenants (the second made with `dockside-cloud
create-tenant`, with the same warehouse code and a shared order reference) stream at the same
time while changes land in every scope; hostile calls come from outside the process; after
each test the process still serves and its log holds none of the secrets it was sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest

from bench.stack import Stack, running_stack
from cloud.fleet.warehouses import create_enrollment_token
from cloud.storage.store import CloudStore, utcnow
from cloud.sync.edge_events import MAX_EVENTS_PER_BATCH
from dockside.sync import bearer
from dockside.v1 import sync_pb2 as pb
from dockside.v1 import sync_pb2_grpc as pb_grpc

STREAM_S = 60
TEMPLATE = {
    "language": "zpl",
    "source": "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }}^FS^XZ",
    "sample_data": {"order": {"order_ref": "SAMPLE-1"}},
    "width_dots": 812,
    "height_dots": 1218,
    "dpi": 203,
}


def _order(ref: str, warehouse: str) -> dict[str, Any]:
    return {
        "order_ref": ref,
        "warehouse": warehouse,
        "service_level": "standard",
        "ship_to": {"name": "A", "street": "1 Dock Rd", "city": "X", "postal_code": "1", "country": "US"},
        "lines": [{"sku": "SKU-1", "qty": 1}],
        "expected_weight_g": 1000,
    }


@dataclass
class Tenant:
    """One tenant's admin API, authenticated with a token minted for it by the CLI."""

    code: str
    api: httpx.Client

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.api.request(method, path, json=body)
        assert response.status_code < 400, f"{method} {path} -> {response.status_code}: {response.text}"
        return response.json() if response.content else None

    def token(self, warehouse: str) -> str:
        return str(
            self.call("POST", f"/api/v1/warehouses/{warehouse}/enrollment-tokens", {"ttl_s": 600})["token"]
        )

    def ingest(self, *orders: dict[str, Any]) -> None:
        assert self.call("POST", "/api/v1/orders", {"orders": list(orders)})["errors"] == []


@dataclass
class Agent:
    """An agent enrolled through the real Enroll RPC."""

    agent_id: str
    credential: str
    tenant: str
    warehouse: str


class Cloud:
    """The real cloud process, two tenants' admin APIs, and a gRPC channel to its Sync service."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.channel = grpc.insecure_channel(stack.cloud.ready["grpc"])
        self.sync = pb_grpc.SyncStub(self.channel)
        self.tenants: dict[str, Tenant] = {}
        self.secrets: list[str] = []  # every token and credential handed out or sent

    def add_tenant(self, code: str, token: str) -> Tenant:
        api = httpx.Client(
            base_url=f"http://{self.stack.cloud.ready['http']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        self.tenants[code] = Tenant(code, api)
        self.secrets.append(token)
        return self.tenants[code]

    def enroll(self, tenant: str, warehouse: str) -> Agent:
        token = self.tenants[tenant].token(warehouse)
        answer = self.sync.Enroll(
            pb.EnrollRequest(token=token, hostname="pc", agent_version="e2e"), timeout=20
        )
        assert (answer.tenant, answer.warehouse) == (tenant, warehouse)
        self.secrets += [token, answer.credential]
        return Agent(answer.agent_id, answer.credential, tenant, warehouse)

    def watch(self, agent: Agent, after_revision: int) -> Any:
        return self.sync.Watch(
            pb.WatchRequest(after_revision=after_revision),
            metadata=bearer(agent.credential),
            timeout=STREAM_S,
        )

    def push(self, agent: Agent, *events: pb.EdgeEvent) -> pb.PushEventsResponse:
        return self.sync.PushEvents(
            pb.PushEventsRequest(events=list(events)), metadata=bearer(agent.credential), timeout=20
        )

    def revision(self) -> int:
        store = CloudStore.open(self.stack.database_url, create=False, listen=False)
        try:
            return store.current_revision()
        finally:
            store.close()

    def assert_serving_and_discreet(self) -> None:
        """The process is alive, answers a well-formed call, and logged no secret it saw."""
        assert self.stack.cloud.alive(), self.stack.cloud.log_tail()
        self.tenants["default"].call("GET", "/api/v1/agents")
        log = self.stack.cloud.log_path.read_text(errors="replace")
        leaked = [secret[:8] for secret in self.secrets if secret and secret in log]
        assert leaked == [], f"secrets in the cloud's log: {leaked}"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """WH1 and WH2 in the default tenant; tenant acme (made with the CLI) with its own WH1.

    The order SHARED-1 exists in both tenants' WH1: the same reference, two orders.
    """
    with running_stack(tmp_path_factory.mktemp("isolation")) as stack:
        stack.start_cloud()
        running = Cloud(stack)
        default = running.add_tenant("default", stack.admin_token)
        url = stack.database_url
        stack.run(["dockside-cloud", "create-tenant", "--code", "acme", "--database-url", url])
        command = ["dockside-cloud", "create-token", "--role", "admin", "--name", "acme-ops"]
        minted = stack.run([*command, "--tenant", "acme", "--database-url", url])
        acme = running.add_tenant("acme", minted.strip().splitlines()[-1].strip())
        for code in ("WH1", "WH2"):
            default.call("POST", "/api/v1/warehouses", {"code": code, "name": f"Default {code}"})
            default.ingest(_order(f"D-{code}-1", code))
        acme.call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "Acme WH1"})
        acme.ingest(_order("ACME-1", "WH1"))
        default.ingest(_order("SHARED-1", "WH1"))
        acme.ingest(_order("SHARED-1", "WH1"))
        try:
            yield running
        finally:
            running.channel.close()
            for tenant in running.tenants.values():
                tenant.api.close()


def _event(order_ref: str, kind: str = "order_packed") -> pb.EdgeEvent:
    return pb.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=b"{}",
        sequence=1,
    )


def _snapshot(stream: Any) -> tuple[set[str], int]:
    """The keys of a snapshot and the revision it ends at."""
    keys: set[str] = set()
    for item in stream:
        if item.HasField("change"):
            keys.add(item.change.key)
        if item.HasField("snapshot_end"):
            return keys, item.snapshot_end.revision
    raise AssertionError("the stream ended before SnapshotEnd")


def _until_key(stream: Any, last: str) -> list[tuple[str, str]]:
    """Every (kind, key) the stream delivers, up to and including the change keyed `last`."""
    seen = []
    for item in stream:
        if item.HasField("change"):
            seen.append((item.change.kind, item.change.key))
            if item.change.key == last:
                stream.cancel()
                return seen
    raise AssertionError(f"the stream ended before {last}; it gave {seen}")


def test_each_agent_streams_only_its_own_warehouse_and_tenant(cloud: Cloud) -> None:
    default, acme = cloud.tenants["default"], cloud.tenants["acme"]
    d1, d2, a1 = cloud.enroll("default", "WH1"), cloud.enroll("default", "WH2"), cloud.enroll("acme", "WH1")
    snapshots = {agent.agent_id: _snapshot(cloud.watch(agent, 0)) for agent in (d1, d2, a1)}
    assert snapshots[d1.agent_id][0] >= {"WH1", "D-WH1-1", "SHARED-1"}
    assert not snapshots[d1.agent_id][0] & {"WH2", "D-WH2-1", "ACME-1"}
    assert snapshots[d2.agent_id][0] >= {"WH2", "D-WH2-1"}
    assert not snapshots[d2.agent_id][0] & {"WH1", "D-WH1-1", "SHARED-1", "ACME-1"}
    assert snapshots[a1.agent_id][0] >= {"WH1", "ACME-1", "SHARED-1"}
    assert not snapshots[a1.agent_id][0] & {"WH2", "D-WH1-1", "D-WH2-1"}

    # Live: all three stream while every scope changes, a tenant-wide template publish included;
    # each scope's END order comes last, so a leak would show before it.
    streams = {agent.agent_id: cloud.watch(agent, snapshots[agent.agent_id][1]) for agent in (d1, d2, a1)}
    default.ingest(_order("LIVE-D-WH2", "WH2"), _order("LIVE-D-WH1", "WH1"))
    acme.ingest(_order("LIVE-ACME", "WH1"))
    acme.call("POST", "/api/v1/templates/acme-label/versions", TEMPLATE)
    acme.call("POST", "/api/v1/templates/acme-label/versions/1/publish")
    default.ingest(_order("END-D-WH1", "WH1"), _order("END-D-WH2", "WH2"))
    acme.ingest(_order("END-ACME", "WH1"))
    assert _until_key(streams[d1.agent_id], "END-D-WH1") == [("order", "LIVE-D-WH1"), ("order", "END-D-WH1")]
    assert _until_key(streams[d2.agent_id], "END-D-WH2") == [("order", "LIVE-D-WH2"), ("order", "END-D-WH2")]
    assert _until_key(streams[a1.agent_id], "END-ACME") == [
        ("order", "LIVE-ACME"),
        ("template_version", "acme-label@1"),  # tenant-wide: every acme warehouse, no other tenant
        ("order", "END-ACME"),
    ]
    cloud.assert_serving_and_discreet()


def test_events_for_another_warehouse_or_tenant_are_rejected_with_the_reason(cloud: Cloud) -> None:
    default, acme = cloud.tenants["default"], cloud.tenants["acme"]
    d1, a1 = cloud.enroll("default", "WH1"), cloud.enroll("acme", "WH1")
    other_warehouse, other_tenant, own = _event("D-WH2-1"), _event("ACME-1"), _event("D-WH1-1")
    answer = cloud.push(d1, other_warehouse, other_tenant, own)
    assert list(answer.acked) == [own.event_id]
    rejected = {item.event_id: (item.code, item.message) for item in answer.rejected}
    assert rejected[other_warehouse.event_id] == (
        "order_not_in_warehouse",
        "order 'D-WH2-1' belongs to another warehouse than 'WH1'",
    )
    # Another tenant's order is as unknown as one that does not exist: its existence is not told.
    assert rejected[other_tenant.event_id][0] == "unknown_order"
    assert "there is no order 'ACME-1'" in rejected[other_tenant.event_id][1]

    # SHARED-1 exists in both tenants' WH1: acme's agent moves only acme's order.
    shared = _event("SHARED-1")
    assert list(cloud.push(a1, shared).acked) == [shared.event_id]

    assert other_warehouse.event_id not in json.dumps(default.call("GET", "/api/v1/orders/D-WH2-1"))
    assert other_tenant.event_id not in json.dumps(acme.call("GET", "/api/v1/orders/ACME-1"))
    assert shared.event_id in json.dumps(acme.call("GET", "/api/v1/orders/SHARED-1"))
    assert shared.event_id not in json.dumps(default.call("GET", "/api/v1/orders/SHARED-1"))
    assert own.event_id in json.dumps(default.call("GET", "/api/v1/orders/D-WH1-1"))
    cloud.assert_serving_and_discreet()


def _expired_token(cloud: Cloud) -> str:
    """A token that expired an hour ago, written where the cloud process reads it."""
    store = CloudStore.open(cloud.stack.database_url, create=False, listen=False)
    try:
        made = create_enrollment_token(store, store.tenant_id(), "WH1", 60, now=utcnow() - timedelta(hours=1))
    finally:
        store.close()
    cloud.secrets.append(made["token"])
    return str(made["token"])


def _refusal(call: Callable[[], Any]) -> grpc.RpcError:
    """The error a call fails with (a stream fails on its first read)."""

    def first_answer() -> Any:
        result = call()
        return next(result) if hasattr(result, "__next__") else result

    with pytest.raises(grpc.RpcError) as refused:
        first_answer()
    return refused.value


def test_bad_credentials_and_tokens_are_refused_with_a_clear_status(cloud: Cloud) -> None:
    agent = cloud.enroll("default", "WH1")
    revoked = cloud.enroll("default", "WH1")
    cloud.tenants["default"].call("POST", f"/api/v1/agents/{revoked.agent_id}/revoke", {})
    acme_credential = cloud.enroll("acme", "WH1").credential
    headers = {
        "none": (),
        "unknown": bearer("dsa_" + "x" * 43),
        "not bearer": (("authorization", f"Basic {agent.credential}"),),
        "revoked": bearer(revoked.credential),
        "enrollment token as credential": bearer(cloud.tenants["default"].token("WH1")),
    }
    for name, metadata in headers.items():
        calls = {
            "Watch": lambda m=metadata: cloud.sync.Watch(pb.WatchRequest(), metadata=m, timeout=10),
            "PushEvents": lambda m=metadata: cloud.sync.PushEvents(
                pb.PushEventsRequest(events=[_event("D-WH1-1")]), metadata=m, timeout=10
            ),
            "ReportStatus": lambda m=metadata: cloud.sync.ReportStatus(
                pb.ReportStatusRequest(), metadata=m, timeout=10
            ),
        }
        for rpc, call in calls.items():
            error = _refusal(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (name, rpc, error)
            assert "enroll" in (error.details() or ""), (name, rpc, error.details())
    # The good credentials still work, each in its own tenant.
    assert cloud.push(agent, _event("D-WH1-1")).acked
    assert cloud.sync.ReportStatus(pb.ReportStatusRequest(), metadata=bearer(acme_credential), timeout=10)

    token = cloud.tenants["default"].token("WH1")
    cloud.secrets.append(token)
    cloud.sync.Enroll(pb.EnrollRequest(token=token, hostname="pc"), timeout=10)
    tokens = {
        "already used": token,
        "expired at": _expired_token(cloud),
        "unknown": "dse_" + "y" * 43,
        "no enrollment token": "",
    }
    for reason, sent in tokens.items():
        error = _refusal(
            lambda t=sent: cloud.sync.Enroll(pb.EnrollRequest(token=t, hostname="pc"), timeout=10)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (reason, error)
        assert reason in (error.details() or ""), (reason, error.details())
        assert "ask an admin" in (error.details() or "") or reason == "no enrollment token"
    cloud.assert_serving_and_discreet()


@pytest.mark.parametrize(
    ("rpc", "message"),
    [
        ("Enroll", "EnrollRequest"),
        ("Watch", "WatchRequest"),
        ("PushEvents", "PushEventsRequest"),
        ("ReportStatus", "ReportStatusRequest"),
    ],
)
def test_malformed_messages_are_refused_with_invalid_argument(cloud: Cloud, rpc: str, message: str) -> None:
    agent = cloud.enroll("default", "WH1")
    method = f"/dockside.v1.Sync/{rpc}"
    raw = cloud.channel.unary_stream(method) if rpc == "Watch" else cloud.channel.unary_unary(method)
    error = _refusal(lambda: raw(b"\xff\xff\xff\xff\x0f", metadata=bearer(agent.credential), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"not a valid dockside.v1.{message} message" in (error.details() or "")
    cloud.assert_serving_and_discreet()


def test_oversized_messages_are_refused_and_the_cloud_keeps_serving(cloud: Cloud) -> None:
    agent = cloud.enroll("default", "WH1")
    huge = pb.EdgeEvent(
        event_id="big", kind="order_packed", order_ref="D-WH1-1", body=b"x" * (5 * 1024 * 1024)
    )
    error = _refusal(lambda: cloud.push(agent, huge))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")
    too_many = [_event("D-WH1-1") for _ in range(MAX_EVENTS_PER_BATCH + 1)]
    error = _refusal(lambda: cloud.push(agent, *too_many))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "send smaller batches" in (error.details() or "")
    hostile = pb.EnrollRequest(token=cloud.tenants["default"].token("WH1"), hostname="pc\x00" * 100)
    error = _refusal(lambda: cloud.sync.Enroll(hostile, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hostname must be at most 253 printable characters" in (error.details() or "")
    # The same agent's well-formed call right after is served.
    assert cloud.push(agent, _event("D-WH1-1")).acked
    cloud.assert_serving_and_discreet()
