"""Each scale protocol on the real stack: a stable weight on the label, a swinging load refused,
noise on the line survived, and a scale unplugged and plugged back found again at its link.

One stack for the module: a cloud and an agent, and per protocol a packing station of its own
(S1 to S4) with its own mock printer and a `dockside-mock scale --protocol P --link L` the
station reads through the link (the stable name a udev rule or COM port gives a USB-serial
adapter). Each protocol's test uses only its station, scale, printer and orders. Unplugging
closes the pty and removes the link; replugging opens a new pty behind the same link, and the
agent's reader must find it without a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.demo_data import station_body
from bench.provision import provision
from bench.stack import Stack, running_stack, wait_for
from tests.e2e.conftest import Station

PROTOCOLS = ("mt-sics", "toledo-8217", "nci-scp12", "cas")
STATIONS = {protocol: f"S{n}" for n, protocol in enumerate(PROTOCOLS, start=1)}
ORDERS_PER_PROTOCOL = 3
# Weights every protocol's units carry exactly enough to come back within a couple of grams.
TOLERANCE_G = 3
# How long a pack waits for a stable weight (the agent's --scale-wait; 3 s by default). The packs
# refused here (a swinging load, an unplugged scale) wait it out in full, and the length of the
# wait is not what these tests are about.
SCALE_WAIT_S = 0.5


@dataclass
class Weighing:
    """One protocol's station: its code, mock scale and printer, its orders, the agent's API."""

    protocol: str
    code: str
    scale: str
    printer: str
    orders: list[str]
    stack: Stack
    http: httpx.Client

    def pack(self, order_ref: str, request_id: str) -> httpx.Response:
        return self.http.post(
            "/api/v1/pack", json={"order_ref": order_ref, "station": self.code, "request_id": request_id}
        )

    def labels(self) -> list[dict[str, Any]]:
        return list(self.stack.control(self.printer, "GET", "/labels"))


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """The module's stack: a station per protocol, each weighing 2268 g, the agent synced."""
    root = tmp_path_factory.mktemp("scales")
    with running_stack(root) as stack:
        stack.start_cloud()
        for protocol, code in STATIONS.items():
            stack.start_printer(f"printer-{code}", serial=f"ZD421-SC-{code}")
            stack.start_scale(f"scale-{code}", protocol=protocol, link=root / f"scale-link-{code}")
            stack.control(f"scale-{code}", "POST", "/weight", {"grams": 2268, "stable": True})
        orders = ORDERS_PER_PROTOCOL * len(PROTOCOLS)
        provision(
            stack,
            order_count=orders,
            order_prefix="SCL",
            printer="printer-S1",
            scale_port=str(root / "scale-link-S1"),
        )
        # The station was provisioned for MT-SICS: point each at its protocol.
        for protocol, code in STATIONS.items():
            _set_station(stack, code, protocol, root / f"scale-link-{code}")
        stack.enroll_agent("WH1")
        stack.start_agent(extra=("--scale-wait", str(SCALE_WAIT_S)))
        station = Station(stack)
        try:
            station.wait_synced(f"SCL-{orders:04d}")
            yield station
        finally:
            station.http.close()


@pytest.fixture(params=PROTOCOLS)
def weighing(request: pytest.FixtureRequest, floor: Station) -> Weighing:
    protocol = str(request.param)
    code = STATIONS[protocol]
    first = PROTOCOLS.index(protocol) * ORDERS_PER_PROTOCOL + 1
    orders = [f"SCL-{n:04d}" for n in range(first, first + ORDERS_PER_PROTOCOL)]
    return Weighing(protocol, code, f"scale-{code}", f"printer-{code}", orders, floor.stack, floor.http)


def _set_station(stack: Stack, code: str, protocol: str, link: Path) -> None:
    printer = stack.processes[f"printer-{code}"].ready
    body = station_body(
        code, printer_id=f"ZD421-SC-{code}", printer_port=int(printer["port"]), scale_port=str(link)
    )
    body["scale"] = {"protocol": protocol, "port": str(link)}
    stack.admin_call("POST", "/api/v1/warehouses/WH1/stations", body)


def _scale(station: Weighing) -> dict[str, Any]:
    stations = station.http.get("/api/v1/status").json()["stations"]
    return dict(next(s for s in stations if s["code"] == station.code)["scale"])


def _weight(station: Weighing, grams: int) -> None:
    station.stack.control(station.scale, "POST", "/weight", {"grams": grams, "stable": True})


def _mode(station: Weighing, **modes: Any) -> None:
    station.stack.control(station.scale, "POST", "/mode", modes)


def _settled_near(station: Weighing, grams: int) -> bool:
    scale = _scale(station)
    return bool(scale["state"] == "ok" and scale["stable"] and abs(scale["weight_g"] - grams) <= TOLERANCE_G)


def test_a_scale_protocol_end_to_end(weighing: Weighing) -> None:
    protocol, station = weighing.protocol, weighing
    first, second, third = weighing.orders
    wait_for(lambda: _settled_near(station, 2268), timeout=15, what=f"a stable weight from {protocol}")

    # A stable weight goes on the label.
    packed = station.pack(first, f"{protocol}-stable")
    assert packed.status_code == 200, packed.text
    assert abs(packed.json()["weight_g"] - 2268) <= TOLERANCE_G

    # A load that keeps swinging is never taken: the packer is told to let it settle.
    _mode(station, swing=True)
    wait_for(lambda: not _scale(station)["stable"], timeout=10, what="the scale to swing")
    swinging = station.pack(second, f"{protocol}-swing")
    assert swinging.status_code >= 400, swinging.text
    error = swinging.json()["error"]
    assert error["code"].startswith("scale_")
    assert "scale" in error["message"]
    _mode(station, swing=False)

    # Noise bytes on the line: the reader resynchronises and the weight is still right.
    _weight(station, 3402)
    _mode(station, noise=True)
    wait_for(lambda: _settled_near(station, 3402), timeout=15, what="a stable weight through the noise")
    noisy = station.pack(second, f"{protocol}-noise")
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
    unplugged = station.pack(third, f"{protocol}-unplugged")
    assert unplugged.status_code >= 400
    assert unplugged.json()["error"]["code"].startswith("scale_")
    _weight(station, 1134)
    _mode(station, unplug=False)
    wait_for(lambda: _settled_near(station, 1134), timeout=15, what="the replugged scale")
    again = station.pack(third, f"{protocol}-replugged")
    assert again.status_code == 200, again.text
    assert abs(again.json()["weight_g"] - 1134) <= TOLERANCE_G
    assert len(station.labels()) == 3
