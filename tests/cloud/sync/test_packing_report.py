"""The packer an agent's events name is recorded, and GET /api/v1/reports/packing counts labels,
parcels and errors per packer, station and UTC hour, within the caller's warehouses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from cloud.access.principals import Role, create_api_token
from cloud.storage import schema
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order

# 2026-12-07 09:10 and 10:20 UTC, in milliseconds.
NINE = int(datetime(2026, 12, 7, 9, 10, tzinfo=UTC).timestamp() * 1000)
TEN = int(datetime(2026, 12, 7, 10, 20, tzinfo=UTC).timestamp() * 1000)
RANGE = {"from": "2026-12-07T08:00:00Z", "to": "2026-12-07T12:00:00Z"}


def _event(
    kind: str, order_ref: str, at_ms: int, station: str, packer: Any, sequence: int
) -> sync_pb2.EdgeEvent:
    body: dict[str, Any] = {"job_id": f"job-{sequence}", "parcel": 1, "document": "shipping_label"}
    if packer != "absent":
        body["packer"] = packer
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station=station,
        occurred_at_ms=at_ms,
        body=json.dumps(body).encode(),
        sequence=sequence,
    )


def _packer(cloud: RunningCloud, wh: str, name: str, badge: str) -> int:
    answer = cloud.api.post(f"/api/v1/warehouses/{wh}/packers", json={"name": name, "badge": badge})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _report(client: httpx.Client, **params: str) -> Any:
    answer = client.get("/api/v1/reports/packing", params={**RANGE, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_report_counts_each_packers_work_per_station_and_hour(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    ana, bo = _packer(cloud, "WH1", "Ana", "B1"), _packer(cloud, "WH1", "Bo", "B2")
    cloud.ingest(order("R1"), order("R2"), order("R3"), order("X1", warehouse="WH2"))
    agent, other = cloud.enroll("WH1"), cloud.enroll("WH2")
    pushed = agent.push(
        _event("order_packed", "R1", NINE, "S1", ana, 1),
        _event("label_printed", "R1", NINE, "S1", ana, 2),
        _event("label_reprinted", "R1", NINE + 60_000, "S1", ana, 3),
        _event("order_packed", "R2", TEN, "S1", ana, 4),
        _event("label_failed", "R2", TEN, "S1", ana, 5),
        _event("order_packed", "R3", TEN, "S2", bo, 6),
        _event("label_printed", "R3", TEN, "S2", bo, 7),
        _event("label_printed", "R3", TEN, "S2", "absent", 8),  # an agent before packers
        _event("weight_captured", "R3", TEN, "S2", bo, 9),  # not counted
    )
    assert len(pushed.acked) == 9, pushed
    assert len(other.push(_event("label_printed", "X1", NINE, "S1", None, 1)).acked) == 1
    with cloud.store.read() as conn:
        stored = conn.execute(
            select(schema.order_events.c.packer).where(schema.order_events.c.order_ref == "R1")
        )
        assert {row.packer for row in stored} == {ana}

    report = _report(cloud.api, warehouse="WH1")
    assert report["warehouse"] == "WH1"
    assert report["from"] == "2026-12-07T08:00:00+00:00"
    assert report["rows"] == [
        {
            "warehouse": "WH1",
            "packer": {"id": ana, "name": "Ana"},
            "station": "S1",
            "hour": "2026-12-07T09:00:00+00:00",
            "labels": 2,
            "parcels": 1,
            "errors": 0,
        },
        {
            "warehouse": "WH1",
            "packer": {"id": ana, "name": "Ana"},
            "station": "S1",
            "hour": "2026-12-07T10:00:00+00:00",
            "labels": 0,
            "parcels": 1,
            "errors": 1,
        },
        {
            "warehouse": "WH1",
            "packer": {"id": bo, "name": "Bo"},
            "station": "S2",
            "hour": "2026-12-07T10:00:00+00:00",
            "labels": 1,
            "parcels": 1,
            "errors": 0,
        },
        {
            "warehouse": "WH1",
            "packer": None,
            "station": "S2",
            "hour": "2026-12-07T10:00:00+00:00",
            "labels": 1,
            "parcels": 0,
            "errors": 0,
        },
    ]
    assert [
        (t["packer"] and t["packer"]["id"], t["labels"], t["parcels"], t["errors"]) for t in report["packers"]
    ] == [
        (ana, 2, 2, 1),
        (bo, 1, 1, 0),
        (None, 1, 0, 0),
    ]
    # The hour before nine is empty; the range's end is not included.
    assert (
        _report(cloud.api, warehouse="WH1", **{"from": "2026-12-07T08:00:00Z", "to": "2026-12-07T09:00:00Z"})[
            "rows"
        ]
        == []
    )
    everywhere = _report(cloud.api)
    assert {row["warehouse"] for row in everywhere["rows"]} == {"WH1", "WH2"}

    # A token for WH2 alone sees WH2's work only, and WH1 as if it did not exist.
    token = create_api_token(cloud.store, name="wh2-viewer", role=Role.VIEWER, warehouses=["WH2"])
    with httpx.Client(
        base_url=f"http://{cloud.http_address}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as scoped:
        assert {row["warehouse"] for row in _report(scoped)["rows"]} == {"WH2"}
        assert scoped.get("/api/v1/reports/packing", params={**RANGE, "warehouse": "WH1"}).status_code == 404


def test_a_malformed_packer_or_range_is_refused(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("R1"))
    agent = cloud.enroll("WH1")
    for bad in ("7", -1, 0, True, 2**63, {"id": 7}):
        pushed = agent.push(_event("label_printed", "R1", NINE, "S1", bad, 1))
        assert not pushed.acked, bad
        assert pushed.rejected[0].code == "invalid_body", bad
    for params in (
        {"from": "2026-12-07T12:00:00Z", "to": "2026-12-07T08:00:00Z"},
        {"from": "2026-10-01T00:00:00Z", "to": "2026-12-07T00:00:00Z"},
        {"from": "yesterday"},
        {"warehouse": "W H"},
        {"warehouse": "x" * 33},
    ):
        answer = cloud.api.get("/api/v1/reports/packing", params=params)
        assert answer.status_code == 422, (params, answer.text)
    assert cloud.api.get("/api/v1/reports/packing", params={"warehouse": "WH9"}).status_code == 404
