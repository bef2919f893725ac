"""Waves over real HTTP and gRPC: orders released to a station in print order, bad orders reported."""

from __future__ import annotations

import json

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
