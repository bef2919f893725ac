"""Personal data: the cloud erases a ship-to on request; agents purge shipped orders' after N days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.access.principals import Role, create_api_token
from dockside.sync import read_watch_item
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.store.privacy import purge_shipped_personal_data
from tests.cloud.conftest import Agent, RunningCloud, order


def _changes(agent: Agent, after: int, count: int) -> list[Any]:
    stream = agent.watch(after)
    seen = []
    try:
        for item in stream:
            if item.HasField("change"):
                seen.append(read_watch_item(item))
                if len(seen) == count:
                    break
    finally:
        stream.cancel()
    return seen


@pytest.fixture
def wh1(cloud: RunningCloud) -> RunningCloud:
    cloud.put_warehouse("WH1")
    return cloud


def test_erasing_blanks_the_ship_to_keeps_the_facts_and_reaches_the_agent(wh1: RunningCloud) -> None:
    agent = wh1.enroll("WH1")
    wh1.ingest(order("P1", expected_weight_g=1500))
    after = wh1.store.current_revision()
    viewer = create_api_token(wh1.store, name="viewer", role=Role.EDITOR)
    refused = wh1.api.post(
        "/api/v1/orders/P1/erase-personal-data", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert refused.status_code == 403
    done = wh1.api.post("/api/v1/orders/P1/erase-personal-data")
    assert done.json() == {"order_ref": "P1", "erased": True}
    kept = wh1.api.get("/api/v1/orders/P1").json()
    assert kept["ship_to"] == {
        "name": "",
        "company": "",
        "street": "",
        "street2": "",
        "city": "",
        "region": "",
        "postal_code": "",
        "country": "US",
        "phone": "",
    }
    assert (kept["expected_weight_g"], kept["lines"][0]["sku"], kept["state"]) == (1500, "SKU-1", "created")
    # The agent's copy is replaced by the erased one.
    (change,) = _changes(agent, after, 1)
    assert json.loads(change.body)["ship_to"]["name"] == ""
    # Timeline and audit trail record the erasure, never the erased values.
    timeline = wh1.api.get("/api/v1/orders/P1/timeline").json()["timeline"]
    assert timeline[-1]["kind"] == "personal_data_erased"
    (entry,) = wh1.api.get("/api/v1/audit", params={"object_kind": "order", "object_key": "P1"}).json()[
        "entries"
    ]
    assert (entry["action"], entry["after"]) == ("erase_personal_data", {"personal_data": "erased"})
    everything = json.dumps(wh1.api.get("/api/v1/audit").json()) + wh1.api.get("/api/v1/export/orders").text
    assert "Ada Lovelace" not in everything
    assert "12 Dock Road" not in everything
    # Erasing again changes nothing; unknown orders are 404.
    assert wh1.api.post("/api/v1/orders/P1/erase-personal-data").json()["erased"] is False
    assert wh1.api.post("/api/v1/orders/NOPE/erase-personal-data").status_code == 404


def test_the_agent_purges_shipped_orders_after_the_configured_days(wh1: RunningCloud) -> None:
    agent = wh1.enroll("WH1")
    after = wh1.store.current_revision()
    wh1.ingest(order("S1"), order("S2"))
    for step in ("released", "packed", "shipped"):
        assert wh1.api.post("/api/v1/orders/S1/state", json={"state": step}).status_code == 200
    changes = _changes(agent, after, 5)  # two ingests, three state changes

    store = Store.connect(":memory:")
    try:
        cache = Cache(store)
        with store.atomic():
            for change in changes:
                cache.apply(change)
        store.conn.execute(
            "INSERT INTO jobs (job_id, request_id, order_ref, station, printer, status, label, weight_g, "
            "decision, created_at_ms, updated_at_ms) VALUES "
            "('J1', 'r1', 'S1', 'S1', 'P', 'printed', X'5E58415E5858', 1, '{}', 1, 1)"
        )
        shipped = cache.order("S1")
        assert shipped is not None
        assert shipped.state == "shipped"
        shipped_at = datetime.fromisoformat(shipped.sync_body()["shipped_at"])
        # Too early: nothing goes.
        assert purge_shipped_personal_data(store, keep_days=7, now=shipped_at + timedelta(days=6)) == []
        assert cache.order("S1").sync_body()["ship_to"]["name"] == "Ada Lovelace"  # type: ignore[union-attr]
        # After the days have passed, the shipped order's personal data and label bytes go.
        assert purge_shipped_personal_data(store, keep_days=7, now=shipped_at + timedelta(days=8)) == ["S1"]
        purged = cache.order("S1")
        assert purged is not None
        assert purged.sync_body()["ship_to"]["name"] == ""
        assert purged.sync_body()["ship_to"]["street"] == ""
        assert purged.sync_body()["ship_to"]["country"] == "US"
        assert purged.sync_body()["lines"] == [
            {
                "sku": "SKU-1",
                "qty": 2,
                "description": "",
                "barcode": "",
                "hs_code": "",
                "origin_country": "",
                "unit_value": None,
            }
        ]
        assert store.conn.execute("SELECT label FROM jobs WHERE job_id = 'J1'").fetchone()[0] == b""
        # The order not shipped keeps its ship-to; a second run has nothing to do.
        assert cache.order("S2").sync_body()["ship_to"]["name"] == "Ada Lovelace"  # type: ignore[union-attr]
        assert (
            purge_shipped_personal_data(store, keep_days=7, now=datetime.now(UTC) + timedelta(days=30)) == []
        )
    finally:
        store.close()
