"""Edge events of a restored agent and of a dock station, over real gRPC: `lease_retired` retires
every lease the agent holds and leases it fresh blocks; `parcel_handed_over` ships the parcel and,
once every parcel of a labelled order is shipped, the order (order.shipped, once)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select

from cloud.storage import schema
from dockside.v1 import sync_pb2
from tests.cloud.conftest import Agent, RunningCloud, order

FORMAT = {"scheme": "gs1_mod10", "prefix": "00340", "digits": 9}


def _event(kind: str, order_ref: str = "", sequence: int = 1, **body: Any) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station="DOCK" if order_ref else "",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(body).encode(),
        sequence=sequence,
    )


def _leases(cloud: RunningCloud, agent_id: str) -> list[Any]:
    table = schema.number_leases
    with cloud.store.read() as conn:
        return list(conn.execute(select(table).where(table.c.agent_id == agent_id).order_by(table.c.id)))


def test_a_restored_agent_retires_every_lease_and_gets_fresh_blocks(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent, other = cloud.enroll("WH1"), cloud.enroll("WH1")
    body = {"code": "DHL", "name": "DHL", "tracking": {"kind": "range", "format": FORMAT}, "block_size": 10}
    assert cloud.api.post("/api/v1/carriers", json=body).status_code == 201
    assert cloud.api.post("/api/v1/carriers/DHL/ranges", json={"first": 1, "last": 1000}).status_code == 201
    before = _leases(cloud, agent.agent_id)
    assert [(lease.first, lease.last, lease.retired) for lease in before] == [(1, 10, False)]
    others_before = _leases(cloud, other.agent_id)

    # Two events of one restore (it names the leases it knew): one retirement, one fresh block.
    retired = [
        _event("lease_retired", lease_id=int(before[0].id), carrier="DHL", reason="restored from backup")
        for _ in range(2)
    ]
    answer = agent.push(*retired)
    assert sorted(answer.acked) == sorted(e.event_id for e in retired), answer
    after = _leases(cloud, agent.agent_id)
    assert [(lease.first, lease.last, lease.retired, lease.used_through) for lease in after] == [
        (1, 10, True, 10),
        (21, 30, False, None),
    ]
    assert _leases(cloud, other.agent_id) == others_before, "another agent's leases are untouched"
    # The agent hears of both: the retired lease and the fresh one.
    table = schema.changes
    with cloud.store.read() as conn:
        bodies = [
            json.loads(text)
            for text in conn.execute(
                select(table.c.body).where(table.c.kind == "number_lease").order_by(table.c.revision)
            ).scalars()
        ]
    assert {"id": int(after[0].id), "retired": True, "used_through": 10}.items() <= bodies[-2].items()
    assert bodies[-1]["id"] == int(after[1].id)
    assert bodies[-1]["retired"] is False

    # Hostile: another agent's lease, a lease that does not exist, a malformed body.
    hostile = [
        _event("lease_retired", lease_id=int(others_before[0].id), carrier="DHL", reason="x"),
        _event("lease_retired", lease_id=999_999, carrier="DHL", reason="x"),
        _event("lease_retired", lease_id="1", carrier="DHL"),
        _event("lease_retired", lease_id=int(before[0].id), carrier=""),
        _event("lease_retired", lease_id=int(before[0].id), carrier="DHL", reason="\x00" * 3),
    ]
    answer = agent.push(*hostile)
    assert not answer.acked
    assert len(answer.rejected) == len(hostile)
    assert all(rejected.message for rejected in answer.rejected)
    assert _leases(cloud, agent.agent_id) == after
    assert _leases(cloud, other.agent_id) == others_before


def _labelled(agent: Agent, ref: str, parcel: int, tracking: str, sequence: int) -> sync_pb2.EdgeEvent:
    return _event(
        "label_printed",
        ref,
        sequence,
        job_id=f"job-{ref}-{parcel}",
        parcel=parcel,
        document="shipping_label",
        tracking_number=tracking,
        carrier="DHL",
        service="express",
        weight_g=900,
    )


def _payloads(cloud: RunningCloud, kind: str) -> list[dict[str, Any]]:
    table = schema.webhook_events
    with cloud.store.read() as conn:
        return [
            json.loads(text)
            for text in conn.execute(
                select(table.c.payload).where(table.c.kind == kind).order_by(table.c.id)
            ).scalars()
        ]


def test_a_dock_handover_ships_the_parcel_and_then_the_order_once(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    two = [{"expected_weight_g": 900}, {"expected_weight_g": 1100}]
    cloud.ingest(order("H-1", parcels=two))
    agent = cloud.enroll("WH1")
    answer = agent.push(_labelled(agent, "H-1", 1, "TRACK1", 1), _labelled(agent, "H-1", 2, "TRACK2", 2))
    assert len(answer.acked) == 2
    get = lambda: cloud.api.get("/api/v1/orders/H-1").json()  # noqa: E731
    assert get()["state"] == "labelled"

    first = _event("parcel_handed_over", "H-1", 3, parcel=1, tracking_number="TRACK1", carrier="DHL")
    assert agent.push(first).acked == [first.event_id]
    assert [p["state"] for p in get()["parcels"]] == ["shipped", "labelled"]
    assert get()["state"] == "labelled", "one parcel is still on the dock"
    # A handover naming another number, or a parcel with no label, changes nothing (and is kept).
    wrong = _event("parcel_handed_over", "H-1", 4, parcel=2, tracking_number="NOTMINE", carrier="DHL")
    none = _event("parcel_handed_over", "H-1", 5, parcel=7, tracking_number="", carrier="DHL")
    assert len(agent.push(wrong, none).acked) == 2
    assert [p["state"] for p in get()["parcels"]] == ["shipped", "labelled"]

    second = _event("parcel_handed_over", "H-1", 6, parcel=2, tracking_number="TRACK2", carrier="DHL")
    assert agent.push(second).acked == [second.event_id]
    assert get()["state"] == "shipped"
    shipped = _payloads(cloud, "order.shipped")
    assert len(shipped) == 1
    assert shipped[0]["order_ref"] == "H-1"
    assert shipped[0]["tracking_numbers"] == ["TRACK1", "TRACK2"]
    assert shipped[0]["carrier"] == "DHL"
    # The agents hear the order shipped, with the moment its personal data may be purged from.
    table = schema.changes
    with cloud.store.read() as conn:
        last = json.loads(
            conn.execute(
                select(table.c.body).where(table.c.kind == "order").order_by(table.c.revision.desc()).limit(1)
            ).scalar_one()
        )
    assert last["state"] == "shipped"
    assert last["shipped_at"]

    # Again (redelivered, or a second scan's event): acked, nothing new.
    again = _event("parcel_handed_over", "H-1", 7, parcel=2, tracking_number="TRACK2", carrier="DHL")
    assert len(agent.push(second, again).acked) == 2
    assert len(_payloads(cloud, "order.shipped")) == 1

    hostile = [
        _event("parcel_handed_over", "H-1", 8, tracking_number="TRACK2"),
        _event("parcel_handed_over", "H-1", 9, parcel=0, tracking_number="TRACK2"),
        _event("parcel_handed_over", "H-1", 10, parcel=2, tracking_number="track 2"),
        _event("parcel_handed_over", "", 11, parcel=2, tracking_number="TRACK2"),
        _event("parcel_handed_over", "NOPE", 12, parcel=1, tracking_number="TRACK2"),
    ]
    answer = agent.push(*hostile)
    assert not answer.acked
    assert len(answer.rejected) == len(hostile)


def test_a_packed_order_is_not_shipped_by_a_handover_of_its_first_parcel(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("H-2", parcels=[{"expected_weight_g": 900}, {"expected_weight_g": 1100}]))
    agent = cloud.enroll("WH1")
    agent.push(_labelled(agent, "H-2", 1, "ONLY1", 1))
    handed = _event("parcel_handed_over", "H-2", 2, parcel=1, tracking_number="ONLY1", carrier="DHL")
    assert agent.push(handed).acked == [handed.event_id]
    order_now = cloud.api.get("/api/v1/orders/H-2").json()
    assert order_now["state"] == "packed", "parcel 2 was never labelled: the order waits for it"
    assert _payloads(cloud, "order.shipped") == []
