"""Edge event ids over real gRPC: unique within a tenant, and never acked unless the event is stored.

An id another tenant already used is that tenant's business: this tenant's event is stored and
acked. An id this tenant already holds for a different event is rejected with a reason (the agent
keeps the event for a person), never acked and dropped; the same event sent again is acked once.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from cloud.access.principals import create_tenant
from cloud.fleet.warehouses import WarehouseIn, create_enrollment_token, put_warehouse
from cloud.orders.ingest import ingest_orders
from cloud.storage import schema
from dockside.v1 import sync_pb2
from tests.cloud.conftest import Agent, RunningCloud, order


def _event(event_id: str, order_ref: str, kind: str = "order_packed", **body: Any) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=event_id,
        kind=kind,
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(body).encode(),
        sequence=1,
    )


def _stored(cloud: RunningCloud, event_id: str) -> list[tuple[int, str, str | None]]:
    events = schema.order_events
    with cloud.store.read() as conn:
        rows = conn.execute(
            select(events.c.tenant_id, events.c.kind, events.c.order_ref).where(events.c.event_id == event_id)
        ).all()
    return sorted((int(row.tenant_id), row.kind, row.order_ref) for row in rows)


@pytest.fixture
def wh1(cloud: RunningCloud) -> RunningCloud:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    cloud.ingest(order("A-1"), order("A-2"), order("A-3", warehouse="WH2"))
    return cloud


def _other_tenants_agent(cloud: RunningCloud) -> tuple[int, Agent]:
    store = cloud.store
    other = create_tenant(store, code="acme", name="Acme")
    put_warehouse(store, other, WarehouseIn(code="WH1", name="Acme's WH1"))
    assert ingest_orders(store, other, [order("B-1")]).accepted == ["B-1"]
    token = create_enrollment_token(store, other, "WH1", ttl_s=600)["token"]
    answer = cloud.stub.Enroll(sync_pb2.EnrollRequest(token=token, hostname="acme-pc", agent_version="0.1.0"))
    return other, Agent(answer.agent_id, answer.credential, answer.warehouse, cloud.stub)


def test_an_id_another_tenant_already_stored_is_stored_for_this_tenant_too(wh1: RunningCloud) -> None:
    ours = wh1.enroll("WH1")
    other, theirs = _other_tenants_agent(wh1)
    shared = str(uuid.uuid4())
    assert list(ours.push(_event(shared, "A-1", weight_g=1200)).acked) == [shared]
    answer = theirs.push(_event(shared, "B-1", weight_g=900))
    assert list(answer.acked) == [shared]
    assert list(answer.rejected) == []
    own = wh1.store.tenant_id()
    assert _stored(wh1, shared) == sorted([(own, "order_packed", "A-1"), (other, "order_packed", "B-1")])
    # The other tenant's event had its effect on its own order.
    with wh1.store.read() as conn:
        state = conn.execute(
            select(schema.orders.c.state).where(
                schema.orders.c.tenant_id == other, schema.orders.c.order_ref == "B-1"
            )
        ).scalar_one()
    assert state == "packed"


def test_an_id_this_tenant_holds_for_another_event_is_rejected_with_a_reason(wh1: RunningCloud) -> None:
    first, second = wh1.enroll("WH1"), wh1.enroll("WH2")
    taken = str(uuid.uuid4())
    assert list(first.push(_event(taken, "A-1", weight_g=1200)).acked) == [taken]
    for agent, event in [
        (second, _event(taken, "A-3", weight_g=800)),  # another agent, another order
        (first, _event(taken, "A-2", weight_g=1200)),  # the same agent reusing an id
        (first, _event(taken, "A-1", "label_printed")),  # same order, another kind
    ]:
        answer = agent.push(event)
        assert list(answer.acked) == []
        assert [(r.event_id, r.code) for r in answer.rejected] == [(taken, "event_id_taken")]
        assert "already stored for another event" in answer.rejected[0].message
    assert _stored(wh1, taken) == [(wh1.store.tenant_id(), "order_packed", "A-1")]
    assert wh1.api.get("/api/v1/orders/A-2").json()["state"] != "packed"


def test_the_same_event_sent_again_is_acked_and_stored_once(wh1: RunningCloud) -> None:
    agent = wh1.enroll("WH1")
    event = _event(str(uuid.uuid4()), "A-1", weight_g=1200)
    assert list(agent.push(event).acked) == [event.event_id]
    assert list(agent.push(event).acked) == [event.event_id]
    # The same PC enrolled again (a new agent id) still has the event in its outbox.
    again = wh1.enroll("WH1")
    assert list(again.push(event).acked) == [event.event_id]
    assert _stored(wh1, event.event_id) == [(wh1.store.tenant_id(), "order_packed", "A-1")]
    timeline = wh1.api.get("/api/v1/orders/A-1").json()["events"]
    assert [e["event_id"] for e in timeline].count(event.event_id) == 1
