"""Security of the Sync service over real gRPC: scope, revocation, hostile input and TLS, one rule
at a time on an in-process cloud (tests/e2e/test_isolation.py drives the real `serve` process)."""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloud.server import run_cloud
from cloud.storage.store import CloudStore
from cloud.sync.tls import ServerTls
from dockside.sync import bearer
from dockside.v1 import sync_pb2, sync_pb2_grpc
from tests.cloud.conftest import STATION, RunningCloud, order


def _event(order_ref: str, kind: str = "packed") -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=b"{}",
        sequence=1,
    )


@pytest.fixture
def two_warehouses(cloud: RunningCloud) -> RunningCloud:
    for code in ("WH1", "WH2"):
        cloud.put_warehouse(code)
        assert cloud.api.post(f"/api/v1/warehouses/{code}/stations", json=STATION).status_code == 201
        cloud.ingest(*(order(f"{code}-{i}", warehouse=code) for i in range(3)))
    return cloud


def _snapshot_keys(stream: Any) -> set[str]:
    keys = set()
    for item in stream:
        if item.HasField("change"):
            keys.add(item.change.key)
        if item.HasField("snapshot_end"):
            stream.cancel()
            return keys
    raise AssertionError("the stream ended before SnapshotEnd")


def test_an_agent_sees_only_its_own_warehouse(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    keys = _snapshot_keys(agent.watch(0))
    assert {"WH1", "WH1-0", "WH1-1", "WH1-2"} <= keys
    assert not any(key.startswith("WH2") for key in keys)
    # Live changes of the other warehouse never reach it either.
    stream = agent.watch(two_warehouses.store.current_revision())
    two_warehouses.ingest(order("WH2-LIVE", warehouse="WH2"), order("WH1-LIVE", warehouse="WH1"))
    for item in stream:
        if item.HasField("change"):
            assert item.change.key == "WH1-LIVE"
            break
    stream.cancel()


def test_an_agent_cannot_push_events_for_another_warehouses_orders(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    before = two_warehouses.api.get("/api/v1/orders/WH2-0").json()
    event = _event("WH2-0")
    answer = agent.push(event)
    assert list(answer.acked) == []
    assert [rejected.event_id for rejected in answer.rejected] == [event.event_id]
    assert answer.rejected[0].message
    assert two_warehouses.api.get("/api/v1/orders/WH2-0").json() == before


def test_a_replayed_enrollment_token_is_refused(two_warehouses: RunningCloud) -> None:
    token = two_warehouses.enrollment_token("WH1")
    request = sync_pb2.EnrollRequest(token=token, hostname="pc-1", agent_version="0.1.0")
    two_warehouses.stub.Enroll(request, timeout=10)
    with pytest.raises(grpc.RpcError) as refused:
        two_warehouses.stub.Enroll(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "already used" in refused.value.details()


@pytest.mark.parametrize("header", ["Bearer dsa_not-a-real-credential", "Basic abc", "Bearer ", "dsa_x"])
def test_bad_credentials_are_refused_on_every_rpc(two_warehouses: RunningCloud, header: str) -> None:
    metadata = (("authorization", header),)
    stub = two_warehouses.stub
    calls = [
        lambda: next(stub.Watch(sync_pb2.WatchRequest(after_revision=0), metadata=metadata, timeout=10)),
        lambda: stub.PushEvents(sync_pb2.PushEventsRequest(), metadata=metadata, timeout=10),
        lambda: stub.ReportStatus(sync_pb2.ReportStatusRequest(), metadata=metadata, timeout=10),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "enroll" in refused.value.details()


def test_an_oversized_message_is_refused_with_resource_exhausted(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    huge = sync_pb2.EdgeEvent(event_id="x", kind="packed", order_ref="WH1-0", body=b"x" * (5 * 1024 * 1024))
    with pytest.raises(grpc.RpcError) as refused:
        agent.push(huge)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_malformed_message_is_refused_with_a_clear_status(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    # Bytes that are not a PushEventsRequest: the server cannot parse them.
    raw = two_warehouses.channel.unary_unary(
        "/dockside.v1.Sync/PushEvents", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as refused:
        raw(b"\xff\xff\xff\xff\x0f", metadata=agent.metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid dockside.v1.PushEventsRequest" in refused.value.details()


def test_revoking_an_agent_ends_its_open_stream_at_once_and_refuses_it_after(
    two_warehouses: RunningCloud,
) -> None:
    agent = two_warehouses.enroll("WH1")
    other = two_warehouses.enroll("WH1")
    stream = agent.watch(two_warehouses.store.current_revision(), timeout=60)
    other_stream = other.watch(two_warehouses.store.current_revision(), timeout=60)
    next(stream)  # the stream is open (a heartbeat)
    outcome: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for _ in stream:
                pass
            outcome.put("ended without a status")
        except grpc.RpcError as exc:
            outcome.put(exc)

    reader = threading.Thread(target=read)
    reader.start()
    answer = two_warehouses.api.post(f"/api/v1/agents/{agent.agent_id}/revoke")
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == agent.agent_id
    # Far sooner than the stream's 60 s deadline: the revocation ends it.
    ended = outcome.get(timeout=10)
    reader.join(timeout=10)
    assert isinstance(ended, grpc.RpcError)
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in ended.details()
    with pytest.raises(grpc.RpcError) as refused:
        agent.push(_event("WH1-0"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The other agent of the warehouse goes on.
    assert next(other_stream).HasField("heartbeat")
    other_stream.cancel()
    # Revoking again answers the same; an unknown agent is a 404 in the contract's shape.
    assert two_warehouses.api.post(f"/api/v1/agents/{agent.agent_id}/revoke").status_code == 200
    missing = two_warehouses.api.post("/api/v1/agents/agt_nobody/revoke")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"code", "message"}


def test_revoking_needs_an_admin_token(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    anonymous = two_warehouses.api.post(
        f"/api/v1/agents/{agent.agent_id}/revoke", headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


# -- TLS --------------------------------------------------------------------------------------


def _certificate(
    name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and an agent's client certificate, as PEM files."""
    ca = _certificate("Dockside test CA", None, ca=True)
    server = _certificate("localhost", ca)
    client = _certificate("agent-1", ca)
    files = {
        "ca": _pem(ca[0]),
        "server.pem": _pem(server[0]),
        "server.key": _key_pem(server[1]),
        "client.pem": _pem(client[0]),
        "client.key": _key_pem(client[1]),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


def _tls_cloud(store: CloudStore, tls: ServerTls) -> Iterator[str]:
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
            tls=tls,
        )

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    addresses = ready.get(timeout=30)
    try:
        yield addresses["grpc"]
    finally:
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=30)


def _enroll_over(channel: grpc.Channel, store: CloudStore) -> Any:
    from cloud.fleet.warehouses import WarehouseIn, create_enrollment_token, put_warehouse

    tenant = store.tenant_id()
    put_warehouse(store, tenant, WarehouseIn(code="WH1", name="Warehouse 1"))
    token = create_enrollment_token(store, tenant, "WH1", ttl_s=600)["token"]
    stub = sync_pb2_grpc.SyncStub(channel)
    return stub.Enroll(sync_pb2.EnrollRequest(token=token, hostname="pc", agent_version="1"), timeout=10)


def test_grpc_over_tls_works_and_plaintext_is_refused(store: CloudStore, pki: dict[str, Path]) -> None:
    tls = ServerTls.load(cert=pki["server.pem"], key=pki["server.key"])
    assert "BEGIN" not in repr(tls)  # the key never shows in a log line
    for address in _tls_cloud(store, tls):
        port = address.rsplit(":", 1)[1]
        secure = grpc.secure_channel(
            f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
        )
        answer = _enroll_over(secure, store)
        assert answer.agent_id.startswith("agt_")
        stub = sync_pb2_grpc.SyncStub(secure)
        stream = stub.Watch(
            sync_pb2.WatchRequest(after_revision=0), metadata=bearer(answer.credential), timeout=10
        )
        assert next(stream).HasField("snapshot_begin")
        stream.cancel()
        secure.close()
        plain = grpc.insecure_channel(f"localhost:{port}")
        with pytest.raises(grpc.RpcError) as refused:
            sync_pb2_grpc.SyncStub(plain).Enroll(sync_pb2.EnrollRequest(token="x"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()


def test_mutual_tls_refuses_an_agent_without_a_client_certificate(
    store: CloudStore, pki: dict[str, Path]
) -> None:
    tls = ServerTls.load(cert=pki["server.pem"], key=pki["server.key"], client_ca=pki["ca"])
    for address in _tls_cloud(store, tls):
        port = address.rsplit(":", 1)[1]
        ca = pki["ca"].read_bytes()
        without = grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=ca))
        with pytest.raises(grpc.RpcError) as refused:
            sync_pb2_grpc.SyncStub(without).Enroll(sync_pb2.EnrollRequest(token="x"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        without.close()
        with_cert = grpc.secure_channel(
            f"localhost:{port}",
            grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=pki["client.key"].read_bytes(),
                certificate_chain=pki["client.pem"].read_bytes(),
            ),
        )
        assert _enroll_over(with_cert, store).agent_id.startswith("agt_")
        with_cert.close()


def test_tls_files_that_are_missing_or_not_pem_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot read the TLS certificate"):
        ServerTls.load(cert=tmp_path / "nope.pem", key=tmp_path / "nope.key")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(OSError, match="is not PEM"):
        ServerTls.load(cert=junk, key=junk)


def test_the_agents_grpc_transport_enrolls_and_watches_over_mutual_tls(
    store: CloudStore, pki: dict[str, Path]
) -> None:
    from cloud.fleet.warehouses import WarehouseIn, create_enrollment_token, put_warehouse
    from edge_agent.sync import GrpcTransport
    from edge_agent.sync.tls import client_credentials

    tls = ServerTls.load(cert=pki["server.pem"], key=pki["server.key"], client_ca=pki["ca"])
    tenant = store.tenant_id()
    put_warehouse(store, tenant, WarehouseIn(code="WH1", name="Warehouse 1"))
    token = create_enrollment_token(store, tenant, "WH1", ttl_s=600)["token"]
    credentials = client_credentials(ca=pki["ca"], cert=pki["client.pem"], key=pki["client.key"])
    for address in _tls_cloud(store, tls):
        target = f"localhost:{address.rsplit(':', 1)[1]}"

        async def scenario(target: str = target) -> tuple[str, bool]:
            enrolling = GrpcTransport(target, channel_credentials=credentials)
            answer = await enrolling.enroll(
                sync_pb2.EnrollRequest(token=token, hostname="pc", agent_version="1")
            )
            await enrolling.close()
            agent = GrpcTransport(target, answer.credential, channel_credentials=credentials)
            try:
                async for item in agent.watch(0):
                    return answer.agent_id, item.HasField("snapshot_begin")
            finally:
                await agent.close()
            raise AssertionError("the stream ended")

        agent_id, snapshot = asyncio.run(scenario())
        assert agent_id.startswith("agt_")
        assert snapshot
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        client_credentials(ca=pki["ca"], cert=pki["client.pem"])
    with pytest.raises(OSError, match="cannot read the TLS CA"):
        client_credentials(ca=pki["ca"].with_name("missing.pem"))


def test_an_agent_never_sees_or_touches_another_tenants_data(two_warehouses: RunningCloud) -> None:
    from cloud.access.principals import create_tenant
    from cloud.fleet.warehouses import WarehouseIn, put_warehouse
    from cloud.orders.ingest import ingest_orders

    store = two_warehouses.store
    other = create_tenant(store, code="acme", name="Acme")
    put_warehouse(store, other, WarehouseIn(code="WH1", name="Acme's WH1"))
    assert ingest_orders(store, other, [order("ACME-1", warehouse="WH1")]).accepted == ["ACME-1"]
    agent = two_warehouses.enroll("WH1")  # the default tenant's WH1: same warehouse code
    keys = _snapshot_keys(agent.watch(0))
    assert "ACME-1" not in keys
    assert {"WH1-0", "WH1-1", "WH1-2"} <= keys
    event = _event("ACME-1")
    answer = agent.push(event)
    assert list(answer.acked) == []
    assert [rejected.event_id for rejected in answer.rejected] == [event.event_id]
