"""A warehouse's settings (`weight_unit`, `item_check`): saved and read back through the admin
API, hostile values refused naming the field, and carried in the warehouse's sync body (snapshot
and live change) that the agent reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cloud.conftest import RunningCloud


def _saved(cloud: RunningCloud, body: dict[str, Any]) -> dict[str, Any]:
    response = cloud.api.post("/api/v1/warehouses", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_settings_default_to_kg_without_item_check_and_round_trip(cloud: RunningCloud) -> None:
    plain = _saved(cloud, {"code": "WH1", "name": "Main"})
    assert (plain["weight_unit"], plain["item_check"]) == ("kg", False)

    revision = cloud.store.current_revision()
    changed = _saved(cloud, {"code": "WH1", "name": "Main", "weight_unit": "lb", "item_check": True})
    assert (changed["weight_unit"], changed["item_check"]) == ("lb", True)
    assert cloud.store.current_revision() == revision + 1  # a settings change is a synced change

    again = cloud.api.post(
        "/api/v1/warehouses", json={"code": "WH1", "name": "Main", "weight_unit": "lb", "item_check": True}
    )
    assert again.status_code == 200
    assert cloud.store.current_revision() == revision + 1  # the same settings again change nothing

    got = cloud.api.get("/api/v1/warehouses/WH1").json()
    assert (got["weight_unit"], got["item_check"]) == ("lb", True)
    listed = cloud.api.get("/api/v1/warehouses").json()["warehouses"]
    assert [(w["code"], w["weight_unit"], w["item_check"]) for w in listed] == [("WH1", "lb", True)]

    # Replacing the warehouse without the settings puts them back to their defaults.
    back = _saved(cloud, {"code": "WH1", "name": "Main"})
    assert (back["weight_unit"], back["item_check"]) == ("kg", False)
    assert cloud.store.current_revision() == revision + 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight_unit", "KG"),
        ("weight_unit", "lbs"),
        ("weight_unit", "g"),
        ("weight_unit", ""),
        ("weight_unit", " kg"),
        ("weight_unit", None),
        ("weight_unit", 1),
        ("weight_unit", ["kg"]),
        ("weight_unit", "k" * 10_000),
        ("item_check", "yes"),
        ("item_check", "true"),
        ("item_check", 1),
        ("item_check", 0),
        ("item_check", None),
        ("item_check", {"on": True}),
    ],
)
def test_a_hostile_setting_is_refused_naming_the_field(cloud: RunningCloud, field: str, value: Any) -> None:
    _saved(cloud, {"code": "WH1", "name": "Main", "weight_unit": "lb"})
    revision = cloud.store.current_revision()
    response = cloud.api.post("/api/v1/warehouses", json={"code": "WH1", "name": "Main", field: value})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith(field), error["message"]
    assert len(response.text) < 2_000  # the 10,000-character value is not echoed back whole
    assert cloud.store.current_revision() == revision
    assert cloud.api.get("/api/v1/warehouses/WH1").json()["weight_unit"] == "lb"


def _warehouse_change(stream: Any) -> dict[str, Any]:
    for item in stream:
        if item.HasField("change") and item.change.kind == "warehouse":
            return dict(json.loads(item.change.body))
    raise AssertionError("the stream ended before a warehouse change")


def test_the_settings_travel_in_the_warehouse_sync_body(cloud: RunningCloud) -> None:
    _saved(cloud, {"code": "WH1", "name": "Main", "weight_unit": "lb", "item_check": True})
    agent = cloud.enroll("WH1")
    stream = agent.watch(0)
    try:
        snapshot = _warehouse_change(stream)
        assert (snapshot["weight_unit"], snapshot["item_check"]) == ("lb", True)
        _saved(cloud, {"code": "WH1", "name": "Main", "weight_unit": "kg", "item_check": False})
        live = _warehouse_change(stream)
        assert (live["weight_unit"], live["item_check"]) == ("kg", False)
    finally:
        stream.cancel()
