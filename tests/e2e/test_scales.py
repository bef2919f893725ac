"""Each scale protocol on the real stack: a stable weight on the label, a swinging load refused,
noise on the line survived, and a scale unplugged and plugged back found again at its link.

Per protocol: a cloud, a mock printer, a `dockside-mock scale --protocol P --link L` and an agent
whose station reads the scale through the link (the stable name a udev rule or COM port gives a
USB-serial adapter). Unplugging closes the pty and removes the link; replugging opens a new pty
behind the same link, and the agent's reader must find it without a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.demo_data import station_body
from bench.provision import provision
from bench.stack import Stack, running_stack, wait_for
from tests.e2e.conftest import Station

PROTOCOLS = ("mt-sics", "toledo-8217", "nci-scp12", "cas")
# Weights every protocol's units carry exactly enough to come back within a couple of grams.
TOLERANCE_G = 3
# How long a pack waits for a stable weight (the agent's --scale-wait; 3 s by default). The packs
# refused here (a swinging load, an unplugged scale) wait it out in full, and the length of the
# wait is not what these tests are about.
SCALE_WAIT_S = 0.5


@pytest.fixture(params=PROTOCOLS)
def weighing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Station]]:
    protocol = str(request.param)
    link = tmp_path / "scale-link"
    with running_stack(tmp_path) as stack:
        stack.start_cloud()
        stack.start_printer(serial="ZD421-SC")
        stack.start_scale(protocol=protocol, link=link)
        stack.control("scale", "POST", "/weight", {"grams": 2268, "stable": True})
        provision(stack, order_count=5, order_prefix="SCL", scale_port=str(link))
        # The station was provisioned for MT-SICS: point it at this protocol.
        _set_protocol(stack, protocol, link)
        stack.enroll_agent("WH1")
        stack.start_agent(extra=("--scale-wait", str(SCALE_WAIT_S)))
        station = Station(stack)
        station.wait_synced("SCL-0005")
        yield protocol, station
        station.http.close()


def _set_protocol(stack: Stack, protocol: str, link: Path) -> None:
    printer = stack.processes["printer"].ready
    body = station_body("S1", printer_id="ZD421-SC", printer_port=int(printer["port"]), scale_port=str(link))
    body["scale"] = {"protocol": protocol, "port": str(link)}
    stack.admin_call("POST", "/api/v1/warehouses/WH1/stations", body)


def _scale(station: Station) -> dict[str, Any]:
    return dict(station.status()["stations"][0]["scale"])


def _weight(station: Station, grams: int) -> None:
    station.stack.control("scale", "POST", "/weight", {"grams": grams, "stable": True})


def _mode(station: Station, **modes: Any) -> None:
    station.stack.control("scale", "POST", "/mode", modes)


def _settled_near(station: Station, grams: int) -> bool:
    scale = _scale(station)
    return bool(scale["state"] == "ok" and scale["stable"] and abs(scale["weight_g"] - grams) <= TOLERANCE_G)


def test_a_scale_protocol_end_to_end(weighing: tuple[str, Station]) -> None:
    protocol, station = weighing
    wait_for(lambda: _settled_near(station, 2268), timeout=15, what=f"a stable weight from {protocol}")

    # A stable weight goes on the label.
    packed = station.pack("SCL-0001", f"{protocol}-stable")
    assert packed.status_code == 200, packed.text
    assert abs(packed.json()["weight_g"] - 2268) <= TOLERANCE_G

    # A load that keeps swinging is never taken: the packer is told to let it settle.
    _mode(station, swing=True)
    wait_for(lambda: not _scale(station)["stable"], timeout=10, what="the scale to swing")
    swinging = station.pack("SCL-0002", f"{protocol}-swing")
    assert swinging.status_code >= 400, swinging.text
    error = swinging.json()["error"]
    assert error["code"].startswith("scale_")
    assert "scale" in error["message"]
    _mode(station, swing=False)

    # Noise bytes on the line: the reader resynchronises and the weight is still right.
    _weight(station, 3402)
    _mode(station, noise=True)
    wait_for(lambda: _settled_near(station, 3402), timeout=15, what="a stable weight through the noise")
    noisy = station.pack("SCL-0002", f"{protocol}-noise")
    assert noisy.status_code == 200, noisy.text
    assert abs(noisy.json()["weight_g"] - 3402) <= TOLERANCE_G
    _mode(station, noise=False)

    # Unplugged: reported as such; plugged back (a new pty behind the same link): found again.
    _mode(station, unplug=True)
    wait_for(
        lambda: _scale(station)["state"] in ("unplugged", "not_answering"),
        timeout=10,
        what="the agent to see the scale unplugged",
    )
    unplugged = station.pack("SCL-0003", f"{protocol}-unplugged")
    assert unplugged.status_code >= 400
    assert unplugged.json()["error"]["code"].startswith("scale_")
    _weight(station, 1134)
    _mode(station, unplug=False)
    wait_for(lambda: _settled_near(station, 1134), timeout=15, what="the replugged scale")
    again = station.pack("SCL-0003", f"{protocol}-replugged")
    assert again.status_code == 200, again.text
    assert abs(again.json()["weight_g"] - 1134) <= TOLERANCE_G
    assert len(station.labels()) == 3
