"""The order sync body's `voided_parcels` names each voided parcel with the number on its label."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from cloud.shipping.voids import MAX_VOIDED_PARCELS
from cloud.storage import schema
from tests.cloud.conftest import RunningCloud, order


def _last_change(cloud: RunningCloud, ref: str) -> dict[str, Any]:
    table = schema.changes
    with cloud.store.read() as conn:
        text = conn.execute(
            select(table.c.body)
            .where(table.c.kind == "order", table.c.key == ref)
            .order_by(table.c.revision.desc())
            .limit(1)
        ).scalar_one()
    return dict(json.loads(text))


def _oms_parcel(tracking: str) -> dict[str, Any]:
    return {"expected_weight_g": 500, "tracking_number": tracking, "carrier": "POST"}


def _void(cloud: RunningCloud, ref: str, parcel: int) -> dict[str, Any]:
    response = cloud.api.post(f"/api/v1/orders/{ref}/parcels/{parcel}/void", json={"reason": "torn"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_voided_parcels_name_the_parcel_and_the_voided_number(cloud: RunningCloud) -> None:
    cloud.put_warehouse()
    parcels = [_oms_parcel("AB123456785GB"), _oms_parcel("AB000000012GB"), _oms_parcel("AB000000026GB")]
    cloud.ingest(order("V-1", parcels=parcels))
    assert _void(cloud, "V-1", 3)["tracking_number"] == "AB000000026GB"
    assert _last_change(cloud, "V-1")["voided_parcels"] == [{"parcel": 3, "tracking_number": "AB000000026GB"}]
    _void(cloud, "V-1", 1)
    synced = _last_change(cloud, "V-1")
    assert synced["voided_parcels"] == [
        {"parcel": 1, "tracking_number": "AB123456785GB"},
        {"parcel": 3, "tracking_number": "AB000000026GB"},
    ]
    # The voided labels' numbers are off the order, so the agent cannot print them again.
    assert [p.get("tracking_number", "") for p in synced["parcels"]] == ["", "AB000000012GB", ""]


def test_voided_parcels_stay_bounded_however_many_rows_are_voided(cloud: RunningCloud) -> None:
    cloud.put_warehouse()
    cloud.ingest(order("V-2", parcels=[_oms_parcel("AB123456785GB")]))
    with cloud.store.write() as tx:  # rows past what an order can expect, as a hostile import might leave
        tx.conn.execute(
            insert(schema.parcels),
            [
                {
                    "tenant_id": 1,
                    "order_ref": "V-2",
                    "number": number,
                    "tracking_number": f"N{number:05d}",
                    "carrier": "POST",
                    "service": "",
                    "documents": "[]",
                    "state": "voided",
                }
                for number in range(2, 202)
            ],
        )
    _void(cloud, "V-2", 1)
    voided = _last_change(cloud, "V-2")["voided_parcels"]
    assert len(voided) == MAX_VOIDED_PARCELS == 99
    assert voided[0] == {"parcel": 1, "tracking_number": "AB123456785GB"}
    assert voided[-1] == {"parcel": 99, "tracking_number": "N00099"}


def test_an_agents_snapshot_names_the_voided_labels_as_the_void_did(cloud: RunningCloud) -> None:
    cloud.put_warehouse()
    cloud.ingest(
        order("V-3", parcels=[_oms_parcel("AB123456785GB"), _oms_parcel("AB000000012GB")]), order("V-4")
    )
    _void(cloud, "V-3", 2)
    agent = cloud.enroll("WH1")
    bodies = {}
    for item in agent.watch(0):
        if item.HasField("snapshot_end"):
            break
        if item.HasField("change") and item.change.kind == "order":
            bodies[item.change.key] = json.loads(item.change.body)
    assert bodies["V-3"]["voided_parcels"] == [{"parcel": 2, "tracking_number": "AB000000012GB"}]
    assert bodies["V-3"] == {**_last_change(cloud, "V-3"), "voided_parcels": bodies["V-3"]["voided_parcels"]}
    assert "voided_parcels" not in bodies["V-4"], "an order without voids reads as before"
