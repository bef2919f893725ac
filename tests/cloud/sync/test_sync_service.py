"""The gRPC Sync service over a real socket: Enroll, Watch, PushEvents and ReportStatus."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from sqlalchemy import text

from cloud.fleet.agents import MAX_TOKENS_AT_ONCE, create_enrollment_tokens
from cloud.fleet.warehouses import WarehouseIn, create_enrollment_token, put_warehouse
from cloud.storage.store import CloudStore, utcnow
from dockside.errors import InputError, NotFound
from dockside.v1 import sync_pb2, sync_pb2_grpc
from tests.cloud.conftest import STATION, TEMPLATE, Agent, RunningCloud, order, serving
from tests.deadlines import hang_deadline


def _rpc_error(call: Any) -> grpc.RpcError:
    """The error an RPC fails with (a stream fails on its first read)."""

    def first_answer() -> Any:
        result = call()
        return next(result) if hasattr(result, "__next__") else result

    with pytest.raises(grpc.RpcError) as caught:
        first_answer()
    return caught.value


def _event(
    kind: str, order_ref: str, *, event_id: str | None = None, body: bytes = b"{}", seq: int = 1
) -> Any:
    return sync_pb2.EdgeEvent(
        event_id=event_id or str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=body,
        sequence=seq,
    )


def _until_snapshot_end(stream: Any) -> list[Any]:
    items = []
    for item in stream:
        items.append(item)
        if item.HasField("snapshot_end"):
            return items
    raise AssertionError("the stream ended before SnapshotEnd")


def _next_change(stream: Any) -> Any:
    """The next Change on the stream, skipping heartbeats."""
    for item in stream:
        if item.HasField("change"):
            return item.change
        assert item.HasField("heartbeat"), item
    raise AssertionError("the stream ended")


def _next_heartbeat(stream: Any) -> Any:
    for item in stream:
        if item.HasField("heartbeat"):
            return item.heartbeat
    raise AssertionError("the stream ended")


def _two_warehouses(cloud: RunningCloud) -> RunningCloud:
    for code in ("WH1", "WH2"):
        cloud.put_warehouse(code)
        assert cloud.api.post(f"/api/v1/warehouses/{code}/stations", json=STATION).status_code == 201
        cloud.ingest(*(order(f"{code}-{i}", warehouse=code) for i in range(3)))
    cloud.api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE)
    assert cloud.api.post("/api/v1/templates/shipping-4x6/versions/1/publish").status_code == 200
    return cloud


@pytest.fixture
def two_warehouses(cloud: RunningCloud) -> RunningCloud:
    """WH1 and WH2, each with station S1 and orders; one published template for the tenant."""
    return _two_warehouses(cloud)


@pytest.fixture
def two_warehouses_for_a_fleet(store: CloudStore) -> Iterator[RunningCloud]:
    """`two_warehouses` on a cloud whose idle streams beat every 2 s, as a fleet's would (rarely):
    at the suite's 0.3 s, 2,000 streams are 6,700 heartbeats a second through one process."""
    with serving(store, heartbeat_s=2.0) as cloud:
        yield _two_warehouses(cloud)


# -- Enroll -----------------------------------------------------------------------------------


def test_enroll_gives_an_identity_once(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    token = cloud.enrollment_token("WH1")
    answer = cloud.stub.Enroll(
        sync_pb2.EnrollRequest(token=token, hostname="packing-pc", agent_version="1.2.3"), timeout=10
    )
    assert answer.agent_id.startswith("agt_")
    assert answer.credential.startswith("dsa_")
    assert (answer.warehouse, answer.tenant) == ("WH1", "default")
    fleet = cloud.api.get("/api/v1/agents").json()["agents"]
    assert [(a["id"], a["warehouse"], a["hostname"], a["version"]) for a in fleet] == [
        (answer.agent_id, "WH1", "packing-pc", "1.2.3")
    ]
    assert answer.credential not in json.dumps(fleet)

    replay = _rpc_error(lambda: cloud.stub.Enroll(sync_pb2.EnrollRequest(token=token), timeout=10))
    assert replay.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "already used" in (replay.details() or "")
    assert len(cloud.api.get("/api/v1/agents").json()["agents"]) == 1


def test_enroll_refuses_expired_unknown_and_empty_tokens(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    tenant = cloud.store.tenant_id()
    expired = create_enrollment_token(cloud.store, tenant, "WH1", 3600, now=utcnow() - timedelta(hours=2))
    cases = [(expired["token"], "expired at"), ("dse_made-up", "unknown"), ("", "no enrollment token")]
    for token, needle in cases:
        error = _rpc_error(lambda t=token: cloud.stub.Enroll(sync_pb2.EnrollRequest(token=t), timeout=10))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert needle in (error.details() or "")
    hostile = _rpc_error(
        lambda: cloud.stub.Enroll(
            sync_pb2.EnrollRequest(token=cloud.enrollment_token("WH1"), hostname="x\n" * 200), timeout=10
        )
    )
    assert hostile.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert cloud.api.get("/api/v1/agents").json() == {"agents": []}


def test_tokens_made_in_bulk_each_enroll_one_agent_once(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    tenant = cloud.store.tenant_id()
    tokens = create_enrollment_tokens(cloud.store, tenant, "WH1", 3, ttl_s=600)
    assert len(set(tokens)) == 3
    answers = [cloud.stub.Enroll(sync_pb2.EnrollRequest(token=t), timeout=10) for t in tokens]
    assert len({answer.credential for answer in answers}) == 3
    assert {answer.warehouse for answer in answers} == {"WH1"}
    replay = _rpc_error(lambda: cloud.stub.Enroll(sync_pb2.EnrollRequest(token=tokens[1]), timeout=10))
    assert "already used" in (replay.details() or "")
    with pytest.raises(NotFound, match="no warehouse 'WH9'"):
        create_enrollment_tokens(cloud.store, tenant, "WH9", 1, ttl_s=600)
    for count in (0, -1, MAX_TOKENS_AT_ONCE + 1):
        with pytest.raises(InputError, match="make between 1 and"):
            create_enrollment_tokens(cloud.store, tenant, "WH1", count, ttl_s=600)


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer dsa_wrong"),), (("authorization", "dsa_x"),)]
)
def test_every_other_rpc_needs_the_agent_credential(cloud: RunningCloud, metadata: tuple[Any, ...]) -> None:
    calls = [
        lambda: cloud.stub.Watch(sync_pb2.WatchRequest(after_revision=0), metadata=metadata, timeout=10),
        lambda: cloud.stub.PushEvents(sync_pb2.PushEventsRequest(), metadata=metadata, timeout=10),
        lambda: cloud.stub.ReportStatus(sync_pb2.ReportStatusRequest(), metadata=metadata, timeout=10),
    ]
    for call in calls:
        error = _rpc_error(call)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "credential" in (error.details() or "")


# -- Watch ------------------------------------------------------------------------------------


def test_watch_from_zero_sends_a_snapshot_of_the_agents_warehouse(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    current = two_warehouses.store.current_revision()
    items = _until_snapshot_end(agent.watch(0))
    assert items[0].snapshot_begin.revision == current
    assert items[-1].snapshot_end.revision == current
    changes = [item.change for item in items[1:-1]]
    assert all(c.revision == current and not c.deleted for c in changes)
    assert [(c.kind, c.key) for c in changes] == [
        ("warehouse", "WH1"),
        ("station", "S1"),
        ("template_version", "shipping-4x6@1"),
        ("order", "WH1-0"),
        ("order", "WH1-1"),
        ("order", "WH1-2"),
    ]
    bodies = {c.key: json.loads(c.body) for c in changes}
    assert bodies["WH1"] == {
        "code": "WH1",
        "name": "Warehouse WH1",
        "ship_from": None,
        "weight_unit": "kg",
        "item_check": False,
    }
    assert bodies["S1"] == {**STATION, "mode": "pack"}
    assert bodies["shipping-4x6@1"]["active"] is True
    assert bodies["shipping-4x6@1"]["source"] == TEMPLATE["source"]
    assert bodies["WH1-0"]["state"] == "created"
    assert bodies["WH1-0"]["order_ref"] == "WH1-0"


def test_watch_resumes_after_a_revision_with_only_later_changes(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    after = two_warehouses.store.current_revision()
    two_warehouses.ingest(order("LATE-1"), order("LATE-2"))
    stream = agent.watch(after)
    first, second = _next_change(stream), _next_change(stream)
    assert [(first.key, second.key)] == [("LATE-1", "LATE-2")]
    assert after < first.revision < second.revision
    stream.cancel()


def test_a_live_change_arrives_while_streaming_and_scope_holds(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    stream = agent.watch(two_warehouses.store.current_revision())
    # A heartbeat proves the stream has sent everything and is now waiting for live changes.
    idle = _next_heartbeat(stream)
    assert idle.revision == two_warehouses.store.current_revision()
    two_warehouses.ingest(order("WH2-LIVE", warehouse="WH2"))
    two_warehouses.api.post("/api/v1/warehouses/WH2/stations", json={**STATION, "code": "S9"})
    two_warehouses.ingest(order("WH1-LIVE"))
    two_warehouses.api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE)
    two_warehouses.api.post("/api/v1/templates/shipping-4x6/versions/2/publish")
    seen = [_next_change(stream) for _ in range(3)]
    assert [(c.kind, c.key) for c in seen] == [
        ("order", "WH1-LIVE"),
        ("template_version", "shipping-4x6@1"),
        ("template_version", "shipping-4x6@2"),
    ]
    assert [json.loads(c.body)["active"] for c in seen[1:]] == [False, True]
    # The heartbeat after that says WH2's changes were passed over, not lost.
    assert _next_heartbeat(stream).revision == two_warehouses.store.current_revision()
    stream.cancel()


def test_a_write_by_another_process_reaches_a_live_stream_without_a_signal(
    two_warehouses: RunningCloud, database_url: str
) -> None:
    """A second store on the same database (as another process would be) wakes nobody: the feed
    still reads the log on its own when quiet, so the change arrives anyway."""
    agent = two_warehouses.enroll("WH1")
    stream = agent.watch(two_warehouses.store.current_revision())
    _next_heartbeat(stream)
    other = CloudStore.open(database_url, create=False, listen=False)
    try:
        put_warehouse(other, other.tenant_id(), WarehouseIn(code="WH2", name="Elsewhere"))
        put_warehouse(other, other.tenant_id(), WarehouseIn(code="WH1", name="Renamed"))
    finally:
        other.close()
    change = _next_change(stream)
    assert (change.kind, change.key, json.loads(change.body)["name"]) == ("warehouse", "WH1", "Renamed")
    stream.cancel()


def test_watch_ahead_of_the_cloud_gets_a_snapshot(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH2")
    items = _until_snapshot_end(agent.watch(10**9))
    assert items[0].HasField("snapshot_begin")
    assert {item.change.key for item in items[1:-1]} >= {"WH2", "WH2-0"}


def test_watch_past_the_compaction_horizon_gets_a_snapshot(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    with two_warehouses.store.engine.begin() as conn:
        conn.execute(text("UPDATE sync_clock SET horizon = 5"))
    assert _until_snapshot_end(agent.watch(4))[0].HasField("snapshot_begin")
    resumed = agent.watch(5)
    assert _next_heartbeat(resumed).revision == two_warehouses.store.current_revision()
    resumed.cancel()


def test_a_large_snapshot_comes_in_pages_and_in_order(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(*(order(f"MANY-{i:04d}") for i in range(1_200)))
    agent = cloud.enroll("WH1")
    items = _until_snapshot_end(agent.watch(0))
    keys = [item.change.key for item in items[1:-1] if item.change.kind == "order"]
    assert keys == [f"MANY-{i:04d}" for i in range(1_200)]


def test_many_snapshots_at_once_all_complete(cloud: RunningCloud) -> None:
    """More concurrent snapshots than the feed lets hold a connection: the rest queue, none fail."""
    cloud.put_warehouse("WH1")
    cloud.ingest(*(order(f"FLEET-{i:04d}") for i in range(1_100)))
    agent = cloud.enroll("WH1")
    streams = [agent.watch(0) for _ in range(20)]
    results: list[int] = []
    errors: list[BaseException] = []

    def read(stream: Any) -> None:
        try:
            results.append(len(_until_snapshot_end(stream)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for stream in streams:
        stream.cancel()
    assert errors == []
    assert results == [1_103] * 20  # begin, the warehouse, 1,100 orders, end


def test_a_fleet_opening_its_streams_at_once_is_served_and_each_gets_only_its_changes(
    two_warehouses_for_a_fleet: RunningCloud,
) -> None:
    """2,000 streams opened in the same instant (a fleet after a cloud restart): none is refused.

    gRPC's default lets 1,000 calls wait for the server loop and then refuses new ones with a
    bare CANCELLED; the cloud raises that limit. One change per warehouse then reaches every
    stream of its warehouse and no other.
    """
    agents = {code: two_warehouses_for_a_fleet.enroll(code) for code in ("WH1", "WH2")}
    after = two_warehouses_for_a_fleet.store.current_revision()
    per_warehouse = 1_000
    received: dict[str, list[str]] = {"WH1": [], "WH2": []}
    failures: list[str] = []

    async def follow(channel: grpc.aio.Channel, agent: Agent, opened: set[int], index: int) -> None:
        call = sync_pb2_grpc.SyncStub(channel).Watch(
            sync_pb2.WatchRequest(after_revision=after), metadata=agent.metadata
        )
        try:
            async for item in call:
                if item.HasField("heartbeat"):
                    opened.add(index)
                if item.HasField("change"):
                    received[agent.warehouse].append(item.change.key)
                    return
        except grpc.aio.AioRpcError as exc:
            failures.append(f"{exc.code().name}: {exc.details()}")
        finally:
            call.cancel()

    async def fleet() -> None:
        opened: set[int] = set()
        async with grpc.aio.insecure_channel(two_warehouses_for_a_fleet.grpc_address) as channel:
            tasks = [
                asyncio.create_task(follow(channel, agents[code], opened, index))
                for index, code in enumerate(["WH1", "WH2"] * per_warehouse)
            ]
            try:
                # Every stream has answered with a heartbeat (after 2 s idle): all are open.
                async with asyncio.timeout(hang_deadline(60)):
                    while len(opened) < len(tasks) and not failures:
                        await asyncio.sleep(0.05)
                if not failures:
                    await asyncio.to_thread(
                        two_warehouses_for_a_fleet.ingest,
                        order("LIVE-1", warehouse="WH1"),
                        order("LIVE-2", warehouse="WH2"),
                    )
                    async with asyncio.timeout(hang_deadline(60)):
                        await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(fleet())
    assert failures[:3] == []
    assert received == {"WH1": ["LIVE-1"] * per_warehouse, "WH2": ["LIVE-2"] * per_warehouse}


# -- PushEvents -------------------------------------------------------------------------------


def _order_row(cloud: RunningCloud, ref: str) -> dict[str, Any]:
    answer: dict[str, Any] = cloud.api.get(f"/api/v1/orders/{ref}").json()
    return answer


def test_the_same_batch_twice_has_one_effect(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    batch = [
        _event("order_packed", "WH1-0", body=b'{"weight_g": 1234}', seq=1),
        _event("label_printed", "WH1-0", body=b'{"job_id": "j-1"}', seq=2),
        _event("weight_captured", "WH1-1", seq=3),
        _event("station_status", "", seq=4),
    ]
    revision = two_warehouses.store.current_revision()
    first = agent.push(*batch)
    assert sorted(first.acked) == sorted(e.event_id for e in batch)
    assert list(first.rejected) == []
    after_first = two_warehouses.store.current_revision()
    assert after_first == revision + 1  # one order change: WH1-0 moved to labelled

    second = agent.push(*batch)
    assert sorted(second.acked) == sorted(e.event_id for e in batch)
    assert two_warehouses.store.current_revision() == after_first
    got = _order_row(two_warehouses, "WH1-0")
    assert got["state"] == "labelled"
    assert [e["kind"] for e in got["events"]] == ["order_packed", "label_printed"]
    assert _order_row(two_warehouses, "WH1-1")["state"] == "created"
    with two_warehouses.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM order_events")).scalar_one() == 4

    # The agent hears of the new state through its own Watch stream.
    change = _next_change(agent.watch(revision))
    assert (change.key, json.loads(change.body)["state"]) == ("WH1-0", "labelled")


def test_events_that_can_never_apply_are_rejected_and_the_rest_applied(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    good = _event("order_packed", "WH1-2")
    bad = {
        "unknown_kind": _event("order_teleported", "WH1-0"),
        "unknown_order": _event("order_packed", "NOPE-1"),
        "order_not_in_warehouse": _event("order_packed", "WH2-0"),
        "invalid_body": _event("label_printed", "WH1-0", body=b"{not json"),
        "invalid_body ": _event("label_printed", "WH1-0", body=b"[1, 2]"),
        "invalid_body  ": _event("label_printed", "WH1-0", body=b"\xff\xfe"),
        "invalid_body   ": _event("label_printed", "WH1-0", body=b"[" * 50_000 + b"]" * 50_000),
        "invalid_event": _event("order_packed", ""),
        "invalid_event ": _event("order_packed", "WH1-0", event_id="has spaces and\nnewlines"),
    }
    late = _event("order_packed", "WH1-1")
    late.occurred_at_ms = 42
    bad["invalid_event  "] = late
    answer = agent.push(good, *bad.values())
    assert list(answer.acked) == [good.event_id]
    rejected = {r.event_id: (r.code, r.message) for r in answer.rejected}
    for expected, event in bad.items():
        code, message = rejected[event.event_id[:64]]
        assert code == expected.strip(), (expected, code, message)
        assert message
    assert _order_row(two_warehouses, "WH1-2")["state"] == "packed"
    assert _order_row(two_warehouses, "WH1-0")["state"] == "created"
    assert _order_row(two_warehouses, "WH2-0")["events"] == []


def test_oversized_batches_are_refused(two_warehouses: RunningCloud) -> None:
    agent = two_warehouses.enroll("WH1")
    too_many = _rpc_error(lambda: agent.push(*(_event("weight_captured", "WH1-0") for _ in range(5_001))))
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "5000" in (too_many.details() or "")
    huge = _rpc_error(
        lambda: agent.push(_event("weight_captured", "WH1-0", body=b'{"x": "' + b"y" * 5_000_000 + b'"}'))
    )
    assert huge.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _order_row(two_warehouses, "WH1-0")["events"] == []


# -- ReportStatus -----------------------------------------------------------------------------


def test_report_status_is_stored_on_the_agent(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent: Agent = cloud.enroll("WH1")
    report = sync_pb2.ReportStatusRequest(
        agent_version="0.2.0",
        revision=17,
        outbox_depth=3,
        devices=[
            sync_pb2.DeviceStatus(
                id="ZD421-1",
                kind="printer",
                station="S1",
                model="ZD421",
                address="10.0.0.5:9100",
                state="ready",
            )
        ],
        sent_at_ms=int(time.time() * 1000),
    )
    answer = agent.stub.ReportStatus(report, metadata=agent.metadata, timeout=10)
    assert abs(answer.server_time_ms - time.time() * 1000) < 60_000
    (seen,) = cloud.api.get("/api/v1/agents").json()["agents"]
    assert (seen["version"], seen["revision"], seen["outbox_depth"]) == ("0.2.0", 17, 3)
    assert seen["devices"] == [
        {
            "id": "ZD421-1",
            "kind": "printer",
            "station": "S1",
            "model": "ZD421",
            "address": "10.0.0.5:9100",
            "state": "ready",
            "message": "",
        }
    ]
    assert seen["last_seen"] is not None

    hostile = sync_pb2.ReportStatusRequest(devices=[sync_pb2.DeviceStatus(id="x" * 1000)])
    error = _rpc_error(lambda: agent.stub.ReportStatus(hostile, metadata=agent.metadata, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert cloud.api.get("/api/v1/agents").json()["agents"][0]["devices"][0]["id"] == "ZD421-1"
