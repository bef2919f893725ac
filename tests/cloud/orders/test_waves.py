"""Waves over real HTTP and gRPC: orders released to a station in print order, bad orders reported."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

from cloud.storage.compaction import CompactionPolicy, compact
from dockside.v1 import sync_pb2
from tests.cloud.conftest import STATION, RunningCloud, order


def test_a_wave_releases_its_orders_to_a_station_in_print_order(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    agent = cloud.enroll("WH1")
    cloud.ingest(order("W3"), order("W1"), order("W2"), order("GONE"), order("ELSEWHERE", warehouse="WH2"))
    cloud.api.post("/api/v1/orders/GONE/cancel")
    after = cloud.store.current_revision()
    response = cloud.api.post(
        "/api/v1/waves",
        json={
            "warehouse": "WH1",
            "station": "S1",
            "order_refs": ["W2", "GONE", "W3", "ELSEWHERE", "W1", "NOPE"],
        },
    )
    assert response.status_code == 201, response.text
    wave = response.json()
    assert wave["order_refs"] == ["W2", "W3", "W1"]
    assert [(e["order_ref"], e["code"]) for e in wave["errors"]] == [
        ("GONE", "illegal_transition"),
        ("ELSEWHERE", "not_found"),
        ("NOPE", "not_found"),
    ]
    assert "is cancelled and cannot join a wave" in wave["errors"][0]["message"]
    # The agent hears each order, released, with its wave position.
    stream = agent.watch(after)
    try:
        changes = []
        for item in stream:
            if item.HasField("change"):
                changes.append(json.loads(item.change.body))
                if len(changes) == 3:
                    break
    finally:
        stream.cancel()
    assert [(c["order_ref"], c["state"], c["wave"]["position"], c["wave"]["station"]) for c in changes] == [
        ("W2", "released", 1, "S1"),
        ("W3", "released", 2, "S1"),
        ("W1", "released", 3, "S1"),
    ]
    held = cloud.api.get(f"/api/v1/waves/{wave['id']}").json()
    assert [(o["order_ref"], o["position"], o["state"]) for o in held["orders"]] == [
        ("W2", 1, "released"),
        ("W3", 2, "released"),
        ("W1", 3, "released"),
    ]
    assert cloud.api.get("/api/v1/orders/W1/timeline").json()["timeline"][-1]["kind"] == "wave_released"
    # Bad waves are refused as a whole with a clear reason.
    assert (
        cloud.api.post(
            "/api/v1/waves", json={"warehouse": "WH1", "station": "S9", "order_refs": ["W1"]}
        ).status_code
        == 404
    )
    twice = cloud.api.post(
        "/api/v1/waves", json={"warehouse": "WH1", "station": "S1", "order_refs": ["W1", "W1"]}
    )
    assert twice.status_code == 422
    assert "appears twice" in twice.json()["error"]["message"]
    assert (
        cloud.api.post(
            "/api/v1/waves", json={"warehouse": "WH1", "station": "S1", "order_refs": []}
        ).status_code
        == 422
    )
    assert cloud.api.get("/api/v1/waves/999").status_code == 404


def _event(kind: str, ref: str, seq: int, **body: Any) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000) + seq,
        body=json.dumps(body).encode(),
        sequence=seq,
    )


def _changes(agent: Any, after: int, count: int) -> list[Any]:
    stream = agent.watch(after)
    try:
        found = []
        for item in stream:
            if item.HasField("change"):
                found.append(item.change)
                if len(found) == count:
                    return found
    finally:
        stream.cancel()
    raise AssertionError("the stream ended early")


def test_the_wave_reaches_the_agent_and_its_progress_follows_the_edge_events(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    agent = cloud.enroll("WH1")
    cloud.ingest(order("P1"), order("P2"), order("P3"), order("P4"))
    after = cloud.store.current_revision()
    wave = cloud.api.post(
        "/api/v1/waves", json={"warehouse": "WH1", "station": "S1", "order_refs": ["P3", "P1", "P4", "P2"]}
    ).json()

    # The wave follows its orders in the change log, so an agent has them all when it sees it.
    changes = _changes(agent, after, 5)
    assert [c.kind for c in changes] == ["order", "order", "order", "order", "wave"]
    assert changes[4].key == str(wave["id"])
    body = json.loads(changes[4].body)
    assert (body["station"], body["order_refs"], body["warehouse"]) == ("S1", ["P3", "P1", "P4", "P2"], "WH1")

    # An agent that resumes below the compacted horizon finds the wave in its snapshot.
    compact(cloud.store, CompactionPolicy(keep_revisions=0, keep_for=timedelta(0)))
    stream = agent.watch(0)
    try:
        snapshot = {}
        for item in stream:
            if item.HasField("change"):
                snapshot[(item.change.kind, item.change.key)] = item.change
            if item.HasField("snapshot_end"):
                break
    finally:
        stream.cancel()
    assert json.loads(snapshot[("wave", str(wave["id"]))].body)["order_refs"] == ["P3", "P1", "P4", "P2"]

    seen = cloud.api.get(f"/api/v1/waves/{wave['id']}").json()
    assert (seen["state"], seen["progress"]["waiting"]) == ("released", 4)
    packed = {"weight_g": 1200, "weight_source": "expected", "wave_id": wave["id"], "job_id": "j"}
    answer = agent.push(
        _event("order_packed", "P3", 1, wave_position=1, **packed),
        _event("label_printed", "P3", 2, job_id="j"),
        _event("order_packed", "P1", 3, wave_position=2, **packed),
        _event("label_held", "P1", 4, job_id="j", message="out of paper"),
    )
    assert len(answer.acked) == 4
    seen = cloud.api.get(f"/api/v1/waves/{wave['id']}").json()
    assert seen["state"] == "printing"
    assert seen["progress"] == {"orders": 4, "labelled": 1, "held": 1, "cancelled": 0, "waiting": 2}
    assert [(o["order_ref"], o["state"], o["label"]) for o in seen["orders"]] == [
        ("P3", "labelled", "printed"),
        ("P1", "packed", "held"),
        ("P4", "released", None),
        ("P2", "released", None),
    ]
    # The expected weight is within any tolerance of itself: no exception is opened.
    assert cloud.api.get("/api/v1/exceptions").json()["exceptions"] == []

    assert cloud.api.post("/api/v1/orders/P4/cancel", json={"reason": "out of stock"}).status_code == 200
    agent.push(
        _event("label_printed", "P1", 5, job_id="j"),
        _event("order_packed", "P2", 6, wave_position=4, **packed),
        _event("label_printed", "P2", 7, job_id="j"),
    )
    seen = cloud.api.get(f"/api/v1/waves/{wave['id']}").json()
    assert seen["state"] == "printed"
    assert seen["progress"] == {"orders": 4, "labelled": 3, "held": 0, "cancelled": 1, "waiting": 0}


def test_a_wave_nobody_could_join_is_not_sent_to_agents(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    after = cloud.store.current_revision()
    wave = cloud.api.post(
        "/api/v1/waves", json={"warehouse": "WH1", "station": "S1", "order_refs": ["NOPE-1", "NOPE-2"]}
    ).json()
    assert wave["order_refs"] == []
    assert [e["code"] for e in wave["errors"]] == ["not_found", "not_found"]
    assert cloud.store.current_revision() == after
    assert cloud.api.get(f"/api/v1/waves/{wave['id']}").json()["state"] == "released"
