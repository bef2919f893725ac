"""The real gRPC transport against a real grpc.aio Sync server on an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from dockside.errors import AuthError, SyncError
from dockside.sync import EventKind
from dockside.v1 import sync_pb2 as pb
from edge_agent.metrics import AgentMetrics
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox
from edge_agent.sync import Backoff, CloudLink, GrpcTransport, MemoryTransport, OutboxSender, Watcher
from edge_agent.sync.cloud_tls import CloudTls
from edge_agent.sync.grpc_transport import CHANNEL_OPTIONS
from tests.e2e.test_agent_tls import Pki, make_pki
from tests.edge_agent.grpc_cloud import serving
from tests.edge_agent.waiting import until


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


@pytest.fixture
def cloud() -> MemoryTransport:
    memory = MemoryTransport(warehouse="WH7")
    memory.add_token("good-token", "agent-42")
    return memory


async def _enrolled(port: int) -> GrpcTransport:
    anonymous = GrpcTransport(f"127.0.0.1:{port}")
    try:
        answer = await anonymous.enroll(pb.EnrollRequest(token="good-token", hostname="pc-1"))
    finally:
        await anonymous.close()
    return GrpcTransport(f"127.0.0.1:{port}", answer.credential)


def test_enroll_returns_the_identity_and_a_token_works_once(cloud: MemoryTransport) -> None:
    async def scenario() -> None:
        async with serving(cloud) as (_, port):
            transport = GrpcTransport(f"127.0.0.1:{port}")
            try:
                answer = await transport.enroll(pb.EnrollRequest(token="good-token", hostname="pc-1"))
                assert (answer.agent_id, answer.warehouse) == ("agent-42", "WH7")
                assert answer.credential
                with pytest.raises(AuthError) as replay:
                    await transport.enroll(pb.EnrollRequest(token="good-token", hostname="pc-1"))
                assert "already used" in replay.value.message
                assert replay.value.fatal
            finally:
                await transport.close()

    run(scenario)


def test_every_rpc_carries_the_bearer_credential(cloud: MemoryTransport) -> None:
    cloud.publish("order", "A-1", {"order_ref": "A-1"})

    async def scenario() -> None:
        async with serving(cloud) as (servicer, port):
            transport = await _enrolled(port)
            try:
                stream = transport.watch(0)
                first = await anext(stream)
                await stream.aclose()  # type: ignore[attr-defined]
                assert first.change.key == "A-1"
                await transport.report_status(pb.ReportStatusRequest(agent_version="0.1", revision=1))
                answer = await transport.push_events([pb.EdgeEvent(event_id="e-1", kind="order_packed")])
                assert list(answer.acked) == ["e-1"]
            finally:
                await transport.close()
            authorized = [seen for seen in servicer.metadata_seen if "authorization" in seen]
            assert len(authorized) == 3
            assert all(seen["authorization"].startswith("Bearer cred-agent-42") for seen in authorized)

    run(scenario)
    assert cloud.reports[0].revision == 1


def test_a_wrong_credential_is_an_auth_error(cloud: MemoryTransport) -> None:
    async def scenario() -> None:
        async with serving(cloud) as (_, port):
            transport = GrpcTransport(f"127.0.0.1:{port}", "stolen-or-revoked")
            try:
                with pytest.raises(AuthError, match="enroll again"):
                    async for _ in transport.watch(0):
                        pass
                with pytest.raises(AuthError):
                    await transport.push_events([pb.EdgeEvent(event_id="e-1")])
            finally:
                await transport.close()

    run(scenario)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_cloud_is_a_retryable_sync_error() -> None:
    port = _free_port()  # free now, and nobody listens on it

    async def scenario() -> None:
        transport = GrpcTransport(f"127.0.0.1:{port}", "cred")
        try:
            with pytest.raises(SyncError) as down:
                await transport.push_events([pb.EdgeEvent(event_id="e-1")])
            assert down.value.code == "cloud_unreachable"
            assert not down.value.fatal
            assert f"127.0.0.1:{port}" in down.value.message
        finally:
            await transport.close()

    run(scenario)


def test_the_client_pings_no_more_often_than_once_a_minute() -> None:
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.keepalive_time_ms"] >= 60_000


def test_sync_over_grpc_survives_a_cloud_restart(store: Store, cloud: MemoryTransport) -> None:
    """Watch and outbox over the real transport: down, back on the same port, resume, drain."""
    for n in range(3):
        cloud.publish("order", f"A-{n}", {"order_ref": f"A-{n}"})

    async def scenario() -> None:
        cache = Cache(store)
        link, metrics = CloudLink(), AgentMetrics()
        outbox = Outbox(store)
        async with serving(cloud) as (_, port):
            transport = await _enrolled(port)
            watcher = Watcher(store, cache, transport, link, metrics, backoff=Backoff(base_s=0.01, cap_s=0.1))
            sender = OutboxSender(outbox, transport, link, metrics, backoff=Backoff(base_s=0.01, cap_s=0.1))
            watcher.on_stream_up(sender.cloud_is_back)
            tasks = [asyncio.create_task(watcher.run()), asyncio.create_task(sender.run())]
            await until(lambda: store.revision() == 3 and link.online, timeout=10)
        try:
            await until(lambda: not link.online, timeout=10, what="the agent to notice the cloud is gone")
            with store.atomic():
                ids = [outbox.record(EventKind.ORDER_PACKED, {"n": n}) for n in range(5)]
            outbox.notify()
            cloud.publish("order", "LATE", {"order_ref": "LATE"})
            async with serving(cloud, port):
                await until(lambda: store.revision() == 4, timeout=15, what="the watch to resume")
                await until(lambda: outbox.depth() == 0, timeout=15, what="the outbox to drain")
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await transport.close()
        assert set(ids) <= set(cloud.received)

    run(scenario)
    assert cloud.watch_calls[0] == 0
    assert cloud.watch_calls[-1] == 3  # resumed from the stored revision, no snapshot
    assert store.query("SELECT order_ref FROM orders WHERE order_ref = 'LATE'")


# -- TLS mismatches: what to fix, said once, retried with backoff --------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _server_tls(pki: Pki) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())])


@pytest.mark.parametrize(
    ("cloud_tls", "agent_ca", "expected"),
    [
        (True, "other_ca", "cannot verify the cloud's certificate: check the TLS CA {path}"),
        (
            False,
            "ca",
            "the cloud does not speak TLS on this port but this agent uses TLS with the TLS CA {path}",
        ),
        (
            True,
            None,
            "the cloud closed the connection before answering: if it serves TLS, give the agent the CA",
        ),
    ],
    ids=["wrong-ca", "tls-agent-plain-cloud", "plain-agent-tls-cloud"],
)
def test_a_tls_mismatch_says_what_to_fix_and_stays_retryable(
    cloud: MemoryTransport, pki: Pki, cloud_tls: bool, agent_ca: str | None, expected: str
) -> None:
    ca = getattr(pki, agent_ca) if agent_ca else None
    files = CloudTls(ca=ca)

    async def scenario() -> None:
        async with serving(cloud, tls=_server_tls(pki) if cloud_tls else None) as (_, port):
            transport = GrpcTransport(
                f"127.0.0.1:{port}", "dsa_x", channel_credentials=files.credentials(), tls=files
            )
            try:
                with pytest.raises(SyncError) as failed:
                    await transport.push_events([pb.EdgeEvent(event_id="e-1")])
            finally:
                await transport.close()
        assert failed.value.code == "cloud_tls"
        assert not failed.value.fatal
        assert expected.format(path=ca) in failed.value.message
        assert "packing goes on" in failed.value.message

    run(scenario)


def test_the_right_ca_syncs_over_tls(cloud: MemoryTransport, pki: Pki) -> None:
    files = CloudTls(ca=pki.ca)

    async def scenario() -> None:
        async with serving(cloud, tls=_server_tls(pki)) as (_, port):
            transport = GrpcTransport(f"localhost:{port}", channel_credentials=files.credentials(), tls=files)
            try:
                answer = await transport.enroll(pb.EnrollRequest(token="good-token", hostname="pc-1"))
            finally:
                await transport.close()
        assert answer.warehouse == "WH7"

    run(scenario)


def test_the_watch_loop_logs_a_wrong_ca_once_and_keeps_retrying_with_backoff(
    store: Store, cloud: MemoryTransport, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    files = CloudTls(ca=pki.other_ca)
    link = CloudLink()

    async def scenario() -> None:
        async with serving(cloud, tls=_server_tls(pki)) as (_, port):
            transport = GrpcTransport(
                f"127.0.0.1:{port}", "dsa_x", channel_credentials=files.credentials(), tls=files
            )
            watcher = Watcher(
                store, Cache(store), transport, link, AgentMetrics(), backoff=Backoff(base_s=0.01, cap_s=0.05)
            )
            task = asyncio.create_task(watcher.run())
            try:
                await until(lambda: watcher.backoff.failures >= 3, timeout=20, what="three attempts")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await transport.close()

    with caplog.at_level(logging.INFO, logger="edge_agent.sync.watch"):
        run(scenario)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"cannot sync with the cloud: cannot verify the cloud's certificate: check the TLS CA {pki.other_ca}"
    )
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("change stream down")]
    assert len(retries) >= 3
    # The agent's status (GET /api/v1/status: last_error) says the same while it retries.
    assert link.last_error.startswith("cannot verify the cloud's certificate")
    assert not link.online
