"""A station's synced `mode` ("pack" by default, or "dock"): the floor keeps it (hostile values
are a station problem and mean pack), `GET /api/v1/stations` tells the station page, and the page
starts in dock mode for a dock station unless `?mode=pack` says otherwise (the toggle stays).
The page's choice is run by node (when installed) from the file the agent serves."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.devices.stations import StationFloor
from edge_agent.sync import MemoryTransport
from tests.edge_agent.agent_harness import RunningAgent, publish_warehouse


def _modes(bodies: dict[str, dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    floor = StationFloor()
    try:
        floor.configure(bodies)
        return {code: (s.describe().mode, s.describe().problems) for code, s in floor.stations.items()}
    finally:
        floor.close()


def test_the_floor_keeps_the_mode_and_refuses_hostile_ones_as_pack() -> None:
    found = _modes(
        {
            "A": {"code": "A"},
            "B": {"code": "B", "mode": "dock"},
            "C": {"code": "C", "mode": " DOCK "},
            "D": {"code": "D", "mode": "pack"},
            **{f"H{n}": {"mode": bad} for n, bad in enumerate([1, True, "", "docks", ["dock"], {"x": 1}])},
            "L": {"mode": "d" * 10_000},
        }
    )
    assert {code: mode for code, (mode, _) in found.items() if not code.startswith(("H", "L"))} == {
        "A": "pack",
        "B": "dock",
        "C": "dock",
        "D": "pack",
    }
    for code in [f"H{n}" for n in range(6)] + ["L"]:
        mode, problems = found[code]
        assert mode == "pack"
        assert any("neither 'pack' nor 'dock'" in p for p in problems), problems
    assert max(len(p) for _, problems in found.values() for p in problems) < 300  # not the 10k value
    assert found["B"][1] == []


def test_the_stations_call_tells_the_page_each_stations_mode(data_dir: Path) -> None:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    cloud.publish("station", "DOCK1", {"code": "DOCK1", "name": "Dock door 1", "mode": "dock"})
    cloud.publish("station", "S9", {"code": "S9", "name": "Packing 9"})
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        assert running.http is not None
        answer = running.http.get("/api/v1/stations").json()
        assert answer == {
            "stations": [
                {"code": "DOCK1", "name": "Dock door 1", "mode": "dock"},
                {"code": "S9", "name": "Packing 9", "mode": "pack"},
            ]
        }
    finally:
        running.stop()


def test_the_page_starts_in_dock_mode_for_a_dock_station() -> None:
    script = resources.files("edge_agent.http.web").joinpath("static", "station.js").read_text("utf-8")
    found = re.search(r"export (function startsInDock\(.*?\n\})", script, re.S)
    assert found, "station.js has no startsInDock"
    cases = [
        # (?mode=, the station's synced mode, the toggle as last left), expected
        ((None, "dock", None), True),
        ((None, "dock", "0"), True),
        (("pack", "dock", "1"), False),
        (("dock", "pack", "0"), True),
        ((None, "pack", None), False),
        ((None, None, None), False),
        ((None, "pack", "1"), True),
        ((None, "DOCK", None), False),  # the agent sends it normalised; anything else is pack
        (("bogus", "dock", None), True),
    ]
    program = found.group(1) + f"\nconsole.log(JSON.stringify({json.dumps([c for c, _ in cases])}"
    program += ".map((c) => startsInDock(...c))));"
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout) == [expected for _, expected in cases]
