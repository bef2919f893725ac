"""One table of station device entries through both sides: what the cloud accepts, the agent runs.

The cloud side validates a station as its API does (`StationIn`), stores it, and reads back the
body it syncs; that body goes to the agent's `StationFloor.configure`, which must open every
printer and the scale without a problem. A bad entry is refused by the cloud (422 in the API)
and, handed straight to the agent (as a cloud from before this rule would have stored it),
leaves a problem on the station instead of a printer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud.fleet.warehouses import StationIn, WarehouseIn, list_stations, put_station, put_warehouse
from cloud.storage.store import CloudStore
from edge_agent.devices.stations import StationFloor
from tests.edge_agent.devices.test_stations import IdleScale, RecordingPrinter

README = Path(__file__).resolve().parents[2] / "README.md"
TCP = {"id": "D8N123456789", "language": "zpl", "host": "10.0.5.21"}
SCALE = {"protocol": "mt-sics", "port": "/dev/ttyUSB0"}


def _readme_station() -> dict[str, Any]:
    """The station in README's "Configure printers and scales" curl example."""
    section = README.read_text().split("### Configure printers and scales", 1)[1]
    body = re.search(r"-d '(\{.*?\})'", section, re.DOTALL)
    assert body is not None, "README's station example moved: keep it a curl -d '{...}' call"
    return dict(json.loads(body.group(1)))


GOOD: list[Any] = [
    pytest.param(_readme_station(), id="README example (its fallback printer has no model)"),
    pytest.param({"printers": [{**TCP, "model": ""}]}, id="empty model"),
    pytest.param({"printers": [{**TCP, "model": "ZD421"}], "scale": SCALE}, id="model and a scale"),
    pytest.param({"printers": [{**TCP, "language": "ZPL", "role": "fallback"}]}, id="language in capitals"),
    pytest.param({"printers": [{**TCP, "host": "printer-2.local", "port": 6101}]}, id="host name, port"),
    pytest.param({"printers": [{**TCP, "host": "[fe80::1]"}]}, id="IPv6 host"),
    pytest.param({"printers": [{**TCP, "host": " 10.0.5.21 ", "id": " P1 "}]}, id="spaces around"),
    pytest.param(
        {"printers": [{"id": "TM1", "language": "escpos", "connection": "serial", "device": "/dev/ttyS0"}]},
        id="ESC/POS on serial",
    ),
    pytest.param(
        {"printers": [{"id": "TM2", "language": "escpos", "connection": "usb", "device": "04b8:0202"}]},
        id="ESC/POS on USB",
    ),
    pytest.param(
        {"printers": [{"id": "TM3", "language": "escpos", "connection": "file", "device": "/dev/usb/lp0"}]},
        id="ESC/POS to a device file",
    ),
    pytest.param({"scale": {"protocol": "CAS", "port": "COM3", "baudrate": 4800}}, id="scale with a rate"),
    pytest.param({"scale": {"protocol": "toledo-8217", "port": "/dev/ttyUSB1"}}, id="scale, default rate"),
    pytest.param(
        {"printers": [{**TCP, "id": f"P{n}", "port": 9100 + n} for n in range(16)]}, id="16 printers"
    ),
]

BAD: list[Any] = [
    pytest.param({"printers": [{"language": "zpl", "host": "h"}]}, id="no id"),
    pytest.param({"printers": [{**TCP, "id": "Zebra ZD421"}]}, id="id with a space"),
    pytest.param({"printers": [{**TCP, "id": "P" * 65}]}, id="id too long"),
    pytest.param({"printers": [{**TCP, "id": 7}]}, id="id a number"),
    pytest.param({"printers": [{"id": "P1", "language": "zpl"}]}, id="network printer without host"),
    pytest.param({"printers": [{**TCP, "host": "10.0.5.21; rm -rf /"}]}, id="host with a command"),
    pytest.param({"printers": [{**TCP, "port": 0}]}, id="port 0"),
    pytest.param({"printers": [{**TCP, "port": 70000}]}, id="port 70000"),
    pytest.param({"printers": [{**TCP, "port": "9100"}]}, id="port as text"),
    pytest.param({"printers": [{**TCP, "port": True}]}, id="port true"),
    pytest.param({"printers": [{**TCP, "port": 9100.5}]}, id="port a fraction"),
    pytest.param({"printers": [{**TCP, "language": "pcl"}]}, id="language pcl"),
    pytest.param({"printers": [{**TCP, "connection": "bluetooth"}]}, id="connection bluetooth"),
    pytest.param(
        {"printers": [{**TCP, "connection": "usb", "host": None, "device": "0a5f:0164"}]}, id="ZPL USB"
    ),
    pytest.param({"printers": [{"id": "TM1", "language": "escpos", "connection": "serial"}]}, id="no device"),
    pytest.param(
        {"printers": [{"id": "TM1", "language": "escpos", "connection": "serial", "device": "/dev/tty\nS0"}]},
        id="device with a newline",
    ),
    pytest.param(
        {
            "printers": [
                {
                    "id": "TM1",
                    "language": "escpos",
                    "connection": "serial",
                    "device": "/dev/ttyS0",
                    "host": "10.0.0.1",
                }
            ]
        },
        id="serial printer with a host",
    ),
    pytest.param({"printers": [{**TCP, "device": "/dev/ttyS0"}]}, id="network printer with a device"),
    pytest.param({"printers": [{**TCP, "model": "M" * 65}]}, id="model too long"),
    pytest.param({"printers": [{**TCP, "model": "ZD\x00421"}]}, id="model with a NUL"),
    pytest.param({"printers": [{**TCP, "model": None}]}, id="model null"),
    pytest.param({"printers": [{**TCP, "role": "Label Printer"}]}, id="role with a space"),
    pytest.param({"printers": [{**TCP, "role": ""}]}, id="empty role"),
    pytest.param({"printers": ["ZD421"]}, id="printer entry a string"),
    pytest.param({"scale": {"protocol": "modbus", "port": "/dev/ttyUSB0"}}, id="scale protocol modbus"),
    pytest.param({"scale": {"protocol": "mt-sics"}}, id="scale without port"),
    pytest.param({"scale": {**SCALE, "baudrate": 12345}}, id="baudrate 12345"),
    pytest.param({"scale": {**SCALE, "baudrate": "9600"}}, id="baudrate as text"),
    pytest.param({"scale": {**SCALE, "port": "COM\r3"}}, id="scale port with a CR"),
    pytest.param({"scale": "mt-sics on COM3"}, id="scale a string"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CloudStore]:
    opened = CloudStore.open(f"sqlite:///{tmp_path / 'cloud.db'}")
    put_warehouse(opened, opened.tenant_id(), WarehouseIn(code="WH1"))
    try:
        yield opened
    finally:
        opened.close()


def _agent_runs(body: dict[str, Any]) -> tuple[list[str], int, bool]:
    """(problems, printers opened, scale started) when the agent configures this station."""
    floor = StationFloor(printer_factory=RecordingPrinter, scale_factory=IdleScale)  # type: ignore[arg-type]
    try:
        floor.configure({"S1": body})
        station = floor.get("S1")
        assert station is not None
        return list(station.problems), len(station.printers), station.scale is not None
    finally:
        floor.close()


@pytest.mark.parametrize("devices", GOOD)
def test_what_the_cloud_accepts_the_agent_runs(store: CloudStore, devices: dict[str, Any]) -> None:
    station = {"code": "S1", **{key: value for key, value in devices.items() if key != "code"}}
    put_station(store, store.tenant_id(), "WH1", StationIn.model_validate(station))
    (synced,) = list_stations(store, store.tenant_id(), "WH1")
    problems, printers, scale = _agent_runs(synced)
    assert problems == []
    assert printers == len(devices.get("printers", []))
    assert scale is ("scale" in devices)


@pytest.mark.parametrize("devices", BAD)
def test_what_the_cloud_refuses_the_agent_refuses_too(devices: dict[str, Any]) -> None:
    station = {"code": "S1", **devices}
    with pytest.raises(ValidationError):
        StationIn.model_validate(station)
    problems, printers, scale = _agent_runs(station)
    assert len(problems) == 1, problems
    assert printers == 0
    assert scale is False


def test_a_bad_entry_tells_the_agent_which_printer_and_field() -> None:
    problems, _, _ = _agent_runs({"printers": [{**TCP, "port": 70000}]})
    assert problems[0].startswith("printer D8N123456789: port is 70000")
    assert "1 to 65535" in problems[0]


def test_an_unknown_field_is_a_typo_at_the_cloud_and_ignored_by_the_agent() -> None:
    # A newer cloud's field must not take a printer away from an agent not yet updated.
    station = {"code": "S1", "printers": [{**TCP, "hots": "10.0.5.22"}]}
    with pytest.raises(ValidationError, match="hots"):
        StationIn.model_validate(station)
    assert _agent_runs(station) == ([], 1, False)


def test_station_rules_beyond_one_entry_are_the_clouds() -> None:
    with pytest.raises(ValidationError, match="unique"):
        StationIn.model_validate({"code": "S1", "printers": [TCP, {**TCP, "host": "10.0.5.22"}]})
    with pytest.raises(ValidationError, match="16"):
        StationIn.model_validate({"code": "S1", "printers": [{**TCP, "id": f"P{n}"} for n in range(17)]})


def test_a_network_printer_syncs_in_the_shape_agents_already_read(store: CloudStore) -> None:
    put_station(store, store.tenant_id(), "WH1", StationIn.model_validate({"code": "S1", "printers": [TCP]}))
    (synced,) = list_stations(store, store.tenant_id(), "WH1")
    assert synced["printers"] == [{**TCP, "role": "label", "port": 9100, "model": ""}]
