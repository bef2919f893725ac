"""Station JSON printer and scale entries: good ones load, bad and hostile ones get a clear InputError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import edge_agent.devices as devices
from dockside.errors import InputError
from edge_agent.devices import PrinterConfig, ScaleConfig


def test_the_readme_station_entry_loads() -> None:
    station = json.loads(
        '{"printers": [{"id": "ZD421-1", "role": "label", "language": "zpl", "host": "127.0.0.1",'
        ' "port": 9100, "model": "ZD421"}], "scale": {"protocol": "mt-sics", "port": "/dev/pts/3",'
        ' "baudrate": 9600}}'
    )
    printer = PrinterConfig.from_dict(station["printers"][0])
    assert printer == PrinterConfig(
        id="ZD421-1", language="zpl", host="127.0.0.1", port=9100, model="ZD421", role="label"
    )
    assert printer.connection == "tcp"
    assert printer.address == "127.0.0.1:9100"
    assert ScaleConfig.from_dict(station["scale"]) == ScaleConfig(
        protocol="mt-sics", port="/dev/pts/3", baudrate=9600
    )


def test_defaults() -> None:
    printer = PrinterConfig.from_dict({"id": "P1", "host": "10.0.0.5"})
    assert (printer.language, printer.port, printer.role, printer.connection) == ("zpl", 9100, "label", "tcp")
    assert ScaleConfig.from_dict({"protocol": "CAS", "port": "COM3"}) == ScaleConfig(
        protocol="cas", port="COM3"
    )


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ([], "not an object"),
        ({"language": "zpl", "host": "h"}, "no 'id'"),
        ({"id": "P1"}, "needs `host`"),
        ({"id": "P1", "host": "h", "language": "pcl"}, "pick the language"),
        ({"id": "P1", "host": "h", "port": 0}, "1 to 65535"),
        ({"id": "P1", "host": "h", "port": "9100"}, "1 to 65535"),
        ({"id": "P1", "host": "h", "port": True}, "1 to 65535"),
        ({"id": "P1", "connection": "bluetooth"}, "use one of"),
        ({"id": "P1", "connection": "serial"}, "needs `device`"),
        ({"id": "P1", "language": "zpl", "connection": "usb", "device": "0a5f:0164"}, "by network"),
        ({"id": "", "host": "h"}, "serial number or MAC"),
        ({"id": 7, "host": "h"}, "serial number or MAC"),
        ({"id": "P" * 5000, "host": "h"}, "1 to 64"),
    ],
)
def test_bad_printer_entries(entry: object, words: str) -> None:
    with pytest.raises(InputError) as caught:
        PrinterConfig.from_dict(entry)
    assert caught.value.code == "invalid_device_config"
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("mt-sics", "not an object"),
        ({"port": "/dev/ttyUSB0"}, "no 'protocol'"),
        ({"protocol": "modbus", "port": "/dev/ttyUSB0"}, "communication menu"),
        ({"protocol": "mt-sics"}, "no 'port'"),
        ({"protocol": "mt-sics", "port": "/dev/ttyUSB0", "baudrate": 12345}, "as set on the scale"),
        ({"protocol": "mt-sics", "port": "/dev/ttyUSB0", "baudrate": "9600"}, "as set on the scale"),
    ],
)
def test_bad_scale_entries(entry: object, words: str) -> None:
    with pytest.raises(InputError) as caught:
        ScaleConfig.from_dict(entry)
    assert words in caught.value.message


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["id", "language", "host", "port", "model", "role", "connection", "device", "protocol", "baudrate"]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=8) | _JSON)
def test_hostile_entries_raise_only_input_error(entry: object) -> None:
    for load in (PrinterConfig.from_dict, ScaleConfig.from_dict):
        with contextlib.suppress(InputError):
            load(entry)


def test_all_is_what_the_package_offers() -> None:
    for name in devices.__all__:
        assert getattr(devices, name) is not None
    assert sorted(devices.__all__) == devices.__all__
