"""The warehouse's settings as the agent reads them from its synced body: the station page's
snapshot carries `weight_unit` and `item_check`, follows a change as it syncs, and reads a body
from before the settings, or a hostile one, as the defaults (kg, no item check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.store.cache import WarehouseSettings
from edge_agent.sync import MemoryTransport
from tests.edge_agent.agent_harness import SHIP_FROM, RunningAgent, publish_warehouse
from tests.edge_agent.waiting import wait_until


def _snapshot(agent: RunningAgent, code: str = "S1") -> dict[str, Any]:
    """The first snapshot the station page's event stream sends."""
    assert agent.http is not None
    with agent.http.stream("GET", f"/api/v1/stations/{code}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[len("data: ") :]))
    raise AssertionError("the stream ended without a snapshot")


def _settings(agent: RunningAgent) -> tuple[str, bool]:
    snapshot = _snapshot(agent)
    return snapshot["weight_unit"], snapshot["item_check"]


def _publish(cloud: MemoryTransport, **settings: Any) -> None:
    cloud.publish(
        "warehouse", "WH1", {"code": "WH1", "name": "Warehouse 1", "ship_from": SHIP_FROM, **settings}
    )


def test_the_station_snapshot_follows_the_synced_settings(data_dir: Path) -> None:
    cloud = MemoryTransport()
    publish_warehouse(cloud)  # a body from before the settings
    cloud.publish("station", "S1", {"code": "S1", "name": "Packing 1"})
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        assert _settings(running) == ("kg", False)
        _publish(cloud, weight_unit="lb", item_check=True)
        wait_until(
            lambda: _settings(running) == ("lb", True), timeout=10, what="the settings to reach the page"
        )
        _publish(cloud, weight_unit="stone", item_check="yes")  # never sent by the cloud: defaults
        wait_until(lambda: _settings(running) == ("kg", False), timeout=10, what="the defaults")
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, ("kg", False)),
        ({}, ("kg", False)),
        ({"weight_unit": "lb", "item_check": True}, ("lb", True)),
        ({"weight_unit": "kg", "item_check": False}, ("kg", False)),
        ({"weight_unit": "LB", "item_check": 1}, ("kg", False)),
        ({"weight_unit": ["lb"], "item_check": "true"}, ("kg", False)),
        ({"weight_unit": "l" * 10_000, "item_check": {"x": 1}}, ("kg", False)),
        ({"weight_unit": None, "item_check": None}, ("kg", False)),
    ],
)
def test_hostile_or_missing_settings_read_as_the_defaults(
    body: dict[str, Any] | None, expected: tuple[str, bool]
) -> None:
    settings = WarehouseSettings.of_body(body)
    assert (settings.weight_unit, settings.item_check) == expected
    assert settings.to_json() == {"weight_unit": expected[0], "item_check": expected[1]}
