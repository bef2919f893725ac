"""Warehouse settings on real parts: set in the cloud's admin API, synced over gRPC to the agent,
shown in the station page's snapshot."""

from __future__ import annotations

import json
from typing import Any

from bench.stack import wait_for
from tests.e2e.conftest import Station


def _settings(station: Station) -> tuple[str, bool]:
    with station.http.stream("GET", "/api/v1/stations/S1/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                snapshot = json.loads(line[len("data: ") :])
                return snapshot["weight_unit"], snapshot["item_check"]
    raise AssertionError("the stream ended without a snapshot")


def test_settings_set_in_the_cloud_reach_the_station_page(station: Station) -> None:
    assert _settings(station) == ("kg", False)
    warehouse: dict[str, Any] = station.stack.admin_call("GET", "/api/v1/warehouses/WH1")
    body = {key: warehouse[key] for key in ("code", "name", "ship_from")}
    saved = station.stack.admin_call(
        "POST", "/api/v1/warehouses", {**body, "weight_unit": "lb", "item_check": True}
    )
    assert (saved["weight_unit"], saved["item_check"]) == ("lb", True)
    wait_for(lambda: _settings(station) == ("lb", True), timeout=30, what="the settings to reach the agent")
    station.stack.admin_call("POST", "/api/v1/warehouses", {**body, "weight_unit": "kg"})
    wait_for(
        lambda: _settings(station) == ("kg", False), timeout=30, what="the change back to reach the agent"
    )
