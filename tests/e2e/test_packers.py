"""Packers on real parts: set up in the cloud, synced to the agent, signed in at the station with a
badge, carried by the pack's job and events into the cloud's packing report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench.stack import wait_for
from tests.e2e.conftest import Station


def _report(station: Station) -> dict[str, Any]:
    now = datetime.now(UTC)
    since = (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    until = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    answer = station.stack.admin.get(
        "/api/v1/reports/packing", params={"warehouse": "WH1", "from": since, "to": until}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_packer_signed_in_with_a_badge_is_counted_in_the_clouds_report(station: Station) -> None:
    stack = station.stack
    packer = stack.admin_call("POST", "/api/v1/warehouses/WH1/packers", {"name": "Ana Li", "badge": "E2E-B1"})
    wait_for(
        lambda: station.http.post("/api/v1/stations/S1/packer", json={"badge": "E2E-B1"}).status_code == 200,
        timeout=30,
        what="the packer to reach the agent and sign in",
    )
    assert station.http.get("/api/v1/stations/S1/packer").json()["packer"] == {
        "id": packer["id"],
        "name": "Ana Li",
    }

    station.put_parcel()
    packed = station.pack("E2E-0001", "req-packer-1")
    assert packed.status_code == 200, packed.text
    job = station.http.get(f"/api/v1/jobs/{packed.json()['job_id']}").json()
    assert job["packer"] == packer["id"]

    def counted() -> bool:
        totals = _report(station)["packers"]
        mine = [t for t in totals if t["packer"] and t["packer"]["id"] == packer["id"]]
        return bool(mine) and (mine[0]["labels"], mine[0]["parcels"], mine[0]["errors"]) == (1, 1, 0)

    wait_for(counted, timeout=30, what="the cloud's report to count the packer's label")
    order = stack.admin_call("GET", "/api/v1/orders/E2E-0001")
    printed = [e for e in order["events"] if e["kind"] == "label_printed"]
    assert printed, order["events"]
    rows = [r for r in _report(station)["rows"] if r["packer"] and r["packer"]["id"] == packer["id"]]
    assert [(r["station"], r["labels"], r["parcels"]) for r in rows] == [("S1", 1, 1)]
