"""Hostile input on the gRPC sync surface: what an agent (or someone holding its credential) can send.

Every RPC is fed generated garbage over a real socket (hypothesis), and the outcome is asserted:
an event batch either fails as a whole with a client-error status, or every event in it is acked
or rejected with a snake_case code and a message, never both and never dropped in silence; the
other RPCs answer with a client-error status or a normal answer, never INTERNAL or UNKNOWN; and
after all of it the service still applies a good event once.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockside.v1 import sync_pb2
from tests.cloud.conftest import STATION, Agent, RunningCloud, order

CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
}
KINDS = [
    "order_packed",
    "label_printed",
    "label_held",
    "label_failed",
    "label_reprinted",
    "weight_captured",
    "job_unknown",
    "exception_raised",
    "station_status",
]
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["", " ", "\x00", "../../etc/passwd", "' OR 1=1 --", "WH2-0", "\u202e", "x" * 5000]),
)
JSON_BODIES = st.recursive(
    st.one_of(st.none(), st.booleans(), INT64, st.floats(allow_nan=True), st.text(max_size=40)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_BODIES.map(lambda value: repr(value).encode()),
    st.fixed_dictionaries(
        {"weight_g": st.one_of(INT64, st.floats(), st.text(max_size=10)), "job_id": HOSTILE_TEXT}
    ).map(lambda value: str(value).replace("'", '"').encode()),
    st.sampled_from([b"{}", b"[]", b"null", b"{" * 10_000, b'{"weight_g": 1e999}', b"\xff\xfe"]),
)
EVENTS = st.builds(
    sync_pb2.EdgeEvent,
    event_id=st.one_of(st.uuids().map(str), HOSTILE_TEXT),
    kind=st.one_of(st.sampled_from(KINDS), HOSTILE_TEXT),
    order_ref=st.one_of(st.sampled_from(["WH1-0", "WH1-1", "WH2-0", "NOPE"]), HOSTILE_TEXT),
    station=st.one_of(st.just("S1"), HOSTILE_TEXT),
    occurred_at_ms=st.one_of(st.just(int(time.time() * 1000)), INT64),
    body=BODIES,
    sequence=INT64,
)
# Hypothesis runs many examples against one running cloud on purpose: state left by one example
# (events stored, orders moved) is exactly what the next hostile batch should meet.
SHARED_CLOUD = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def warehouse_agent(cloud: RunningCloud) -> Agent:
    """An agent of WH1, beside a WH2 it must never reach, each with orders."""
    for code in ("WH1", "WH2"):
        cloud.put_warehouse(code)
        assert cloud.api.post(f"/api/v1/warehouses/{code}/stations", json=STATION).status_code == 201
        cloud.ingest(*(order(f"{code}-{i}", warehouse=code) for i in range(2)))
    return cloud.enroll("WH1")


def _call(rpc: Any) -> tuple[Any, grpc.RpcError | None]:
    """Run an RPC (a stream: read its first item); its answer, or the error it failed with."""
    try:
        answer = rpc()
        return (next(answer) if hasattr(answer, "__next__") else answer), None
    except grpc.RpcError as error:
        return None, error


def _assert_client_error(error: grpc.RpcError) -> None:
    assert error.code() in CLIENT_ERRORS, (error.code(), error.details())
    assert error.details(), "a refusal must say what went wrong"


@given(batch=st.lists(EVENTS, min_size=1, max_size=8))
@SHARED_CLOUD
def test_every_hostile_event_is_acked_or_rejected_with_a_reason(
    cloud: RunningCloud, warehouse_agent: Agent, batch: list[Any]
) -> None:
    answer, error = _call(lambda: warehouse_agent.push(*batch))
    if error is not None:
        _assert_client_error(error)
        return
    acked = set(answer.acked)
    rejected = {r.event_id: r for r in answer.rejected}
    assert not acked & set(rejected), "an event is either acked or rejected, never both"
    for event in batch:
        # The cloud may shorten an id it refuses (it is echoed for the agent's dead letters).
        seen = event.event_id in acked or event.event_id in rejected or event.event_id[:64] in rejected
        assert seen, f"event {event.event_id!r} was neither acked nor rejected: it would be lost"
    for refusal in answer.rejected:
        assert SNAKE_CASE.match(refusal.code), refusal
        assert refusal.message.strip(), refusal
    assert all(refusal.event_id[:64] not in acked for refusal in answer.rejected)


@given(batch=st.lists(EVENTS, min_size=1, max_size=6))
@SHARED_CLOUD
def test_an_acked_hostile_event_pushed_again_has_no_second_effect(
    cloud: RunningCloud, warehouse_agent: Agent, batch: list[Any]
) -> None:
    first, error = _call(lambda: warehouse_agent.push(*batch))
    if error is not None:
        _assert_client_error(error)
        return
    before = cloud.store.current_revision()
    again, error = _call(lambda: warehouse_agent.push(*batch))
    assert error is None, error
    assert set(again.acked) == set(first.acked)
    assert cloud.store.current_revision() == before, "a replayed batch changed an order again"


@given(
    token=HOSTILE_TEXT,
    hostname=HOSTILE_TEXT,
    version=HOSTILE_TEXT,
)
@SHARED_CLOUD
def test_enroll_with_hostile_fields_is_refused_cleanly(
    cloud: RunningCloud, token: str, hostname: str, version: str
) -> None:
    request = sync_pb2.EnrollRequest(token=token, hostname=hostname, agent_version=version)
    answer, error = _call(lambda: cloud.stub.Enroll(request, timeout=20))
    assert answer is None, "a made-up enrollment token enrolled an agent"
    assert error is not None
    _assert_client_error(error)


@given(
    devices=st.lists(
        st.builds(
            sync_pb2.DeviceStatus,
            id=HOSTILE_TEXT,
            kind=st.one_of(st.sampled_from(["printer", "scale"]), HOSTILE_TEXT),
            station=HOSTILE_TEXT,
            model=HOSTILE_TEXT,
            address=HOSTILE_TEXT,
            state=st.one_of(st.sampled_from(["ready", "fault", "offline", "unknown"]), HOSTILE_TEXT),
            message=HOSTILE_TEXT,
        ),
        max_size=5,
    ),
    version=HOSTILE_TEXT,
    revision=INT64,
    depth=INT64,
    sent_at=INT64,
)
@SHARED_CLOUD
def test_report_status_with_hostile_fields_is_stored_or_refused_never_a_server_error(
    cloud: RunningCloud,
    warehouse_agent: Agent,
    devices: list[Any],
    version: str,
    revision: int,
    depth: int,
    sent_at: int,
) -> None:
    report = sync_pb2.ReportStatusRequest(
        agent_version=version, revision=revision, outbox_depth=depth, devices=devices, sent_at_ms=sent_at
    )
    answer, error = _call(
        lambda: warehouse_agent.stub.ReportStatus(report, metadata=warehouse_agent.metadata, timeout=20)
    )
    if error is not None:
        _assert_client_error(error)
    else:
        assert answer.server_time_ms > 0
    fleet = cloud.api.get("/api/v1/agents")
    assert fleet.status_code == 200, "a stored status report broke the fleet view"


@given(after=INT64)
@SHARED_CLOUD
def test_watch_from_any_revision_answers_or_refuses_cleanly(
    cloud: RunningCloud, warehouse_agent: Agent, after: int
) -> None:
    first, error = _call(lambda: warehouse_agent.watch(after, timeout=20))
    if error is not None:
        _assert_client_error(error)
        return
    assert first.WhichOneof("item") in {"change", "snapshot_begin", "heartbeat"}


def test_after_hostile_traffic_a_good_event_still_applies_once(
    cloud: RunningCloud, warehouse_agent: Agent
) -> None:
    garbage = [
        sync_pb2.EdgeEvent(event_id="", kind="\x00", body=b"{" * 10_000),
        sync_pb2.EdgeEvent(event_id="x" * 5000, kind="order_packed", order_ref="WH2-0", body=b"{}"),
    ]
    answer, error = _call(lambda: warehouse_agent.push(*garbage))
    assert error is None, error
    assert not answer.acked
    good = sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind="order_packed",
        order_ref="WH1-1",
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=b'{"weight_g": 900}',
        sequence=1,
    )
    for _ in range(2):
        assert list(warehouse_agent.push(good).acked) == [good.event_id]
    events = cloud.api.get("/api/v1/orders/WH1-1").json()["events"]
    assert [e["kind"] for e in events] == ["order_packed"]
    assert cloud.api.get("/healthz").status_code == 200
