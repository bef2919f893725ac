"""The scale mocks over their real pty with pyserial: every protocol's frames, modes and faults."""

from __future__ import annotations

import os
import re
import threading

import httpx
import pytest
import serial

from tests.hardware_mocks.mock_peers import wait_until


@pytest.fixture
def open_port():
    opened: list[serial.Serial] = []

    def open_serial(path: str, **options) -> serial.Serial:
        options.setdefault("timeout", 2)
        port = serial.Serial(path, 9600, **options)
        opened.append(port)
        return port

    yield open_serial
    for port in opened:
        port.close()


def sics(port: serial.Serial, command: bytes) -> bytes:
    port.write(command + b"\r\n")
    reply = port.read_until(b"\r\n")
    assert reply.endswith(b"\r\n"), f"no reply to {command!r}: {reply!r}"
    return reply[:-2]


WEIGHT = re.compile(rb"^(S|T|TA|TI) ([SDA]) (.{10}) (g|kg|lb)$")


def test_mt_sics_replies_have_the_real_layout(make_scale, open_port):
    scale = make_scale("mt-sics", serial="B123456789")
    port = open_port(scale.pty_path)
    scale.set_weight(1234.5)
    assert sics(port, b"S") == b"S S     1234.5 g"
    assert sics(port, b"SI") == b"S S     1234.5 g"
    assert WEIGHT.match(sics(port, b"S"))
    assert sics(port, b"I4") == b'I4 A "B123456789"'
    assert sics(port, b"@") == b'I4 A "B123456789"'
    assert sics(port, b"s") == b"ES"  # commands are upper case
    assert sics(port, b"XYZ") == b"ES"
    assert sics(port, b"S 5") == b"EL"
    assert sics(port, b"S\xe9") == b"ET"
    assert sics(port, b"I2").startswith(b'I2 A "')


def test_mt_sics_zero_and_tare_change_later_readings(make_scale, open_port):
    scale = make_scale("mt-sics")
    port = open_port(scale.pty_path)
    scale.set_weight(120)  # an empty tray left on the platform, inside the zero range
    assert sics(port, b"Z") == b"Z A"
    assert sics(port, b"S") == b"S S        0.0 g"
    scale.set_weight(1120)
    assert sics(port, b"S") == b"S S     1000.0 g"
    assert sics(port, b"T") == b"T S     1000.0 g"
    scale.set_weight(1620)
    assert sics(port, b"S") == b"S S      500.0 g"
    assert sics(port, b"TA") == b"TA A     1000.0 g"
    assert sics(port, b"TAC") == b"TAC A"
    assert sics(port, b"S") == b"S S     1500.0 g"
    scale.set_weight(5000)
    assert sics(port, b"Z") == b"Z +"  # beyond the zero setting range
    state = httpx.get(f"http://{scale.control_address}/").json()
    assert state["zero_offset_g"] == 120
    assert state["reading"]["net_g"] == 4880


def test_mt_sics_stable_request_waits_for_stability(make_scale, open_port):
    scale = make_scale("mt-sics", stable_timeout_s=3.0)
    port = open_port(scale.pty_path, timeout=5)
    scale.set_weight(800, stable=False)
    assert sics(port, b"SI") == b"S D      800.0 g"
    port.write(b"S\r\n")
    wait_until(lambda: scale.status()["commands_received"] >= 2, what="S received")
    threading.Timer(0.1, scale.set_weight, args=(810,)).start()
    assert port.read_until(b"\r\n") == b"S S      810.0 g\r\n"


def test_mt_sics_stable_request_times_out_while_swinging(make_scale, open_port):
    scale = make_scale("mt-sics", stable_timeout_s=0.3)
    port = open_port(scale.pty_path)
    scale.set_weight(2000)
    scale.set_mode(swing=True)
    assert sics(port, b"S") == b"S I"
    values = set()
    for _ in range(5):
        reply = sics(port, b"SI")
        assert reply.startswith(b"S D ")
        values.add(reply)
    assert sics(port, b"Z") == b"Z I"
    assert sics(port, b"T") == b"T I"
    scale.set_mode(swing=False)
    assert sics(port, b"S") == b"S S     2000.0 g"


def test_mt_sics_overload_underload_and_units(make_scale, open_port):
    scale = make_scale("mt-sics")
    port = open_port(scale.pty_path)
    scale.set_mode(overload=True)
    assert sics(port, b"S") == b"S +"
    assert sics(port, b"SI") == b"S +"
    scale.set_mode(overload=False, underload=True)
    assert sics(port, b"S") == b"S -"
    scale.set_mode(underload=False)
    scale.set_weight(40000)  # beyond the 30 kg capacity
    assert sics(port, b"S") == b"S +"
    scale.set_weight(1500)
    scale.set_mode(units="kg")
    assert sics(port, b"S") == b"S S     1.5000 kg"
    scale.set_mode(units="lb")
    assert sics(port, b"S") == b"S S     3.3069 lb"


def test_mt_sics_repeat_until_reset(make_scale, open_port):
    scale = make_scale("mt-sics")
    port = open_port(scale.pty_path)
    scale.set_weight(10)
    port.write(b"SIR\r\n")
    lines = [port.read_until(b"\r\n") for _ in range(4)]
    assert all(line == b"S S       10.0 g\r\n" for line in lines)
    port.write(b"@\r\n")
    rest = b""
    while not rest.endswith(b'I4 A "B912345678"\r\n'):
        chunk = port.read_until(b"\r\n")
        assert chunk, "no reset answer"
        rest += chunk
    port.reset_input_buffer()
    assert sics(port, b"I4") == b'I4 A "B912345678"'


def test_noise_interleaves_garbage_between_frames(make_scale, open_port):
    scale = make_scale("mt-sics")
    port = open_port(scale.pty_path)
    scale.set_weight(321)
    scale.set_mode(noise=True)
    clean, garbage = 0, 0
    for _ in range(40):
        port.write(b"SI\r\n")
        while True:
            line = port.read_until(b"\r\n")
            assert line.endswith(b"\r\n")
            if line == b"S S      321.0 g\r\n":
                clean += 1
                break
            garbage += 1
    assert clean == 40
    assert garbage > 5


def test_silent_scale_answers_nothing(make_scale, open_port):
    scale = make_scale("mt-sics")
    port = open_port(scale.pty_path, timeout=0.3)
    scale.set_mode(silent=True)
    port.write(b"S\r\n")
    assert port.read(10) == b""
    scale.set_mode(silent=False)
    port.timeout = 2
    assert sics(port, b"SI").startswith(b"S S")


def test_unplug_closes_the_pty_and_replug_relinks_a_new_one(make_scale, open_port, tmp_path):
    link = tmp_path / "ttyScale"
    scale = make_scale("mt-sics", link=link)
    first_path = scale.pty_path
    assert os.readlink(link) == first_path
    port = open_port(str(link))
    assert sics(port, b"I4").startswith(b"I4 A")
    control = httpx.Client(base_url=f"http://{scale.control_address}")
    state = control.post("/mode", json={"unplug": True}).json()
    assert state["plugged"] is False
    assert not link.exists()
    with pytest.raises(serial.SerialException):
        read_after_write(port, b"SI\r\n")
    state = control.post("/mode", json={"unplug": False}).json()
    assert state["plugged"] is True
    assert state["plug_count"] == 2
    assert os.readlink(link) == state["pty"]
    again = open_port(str(link))
    scale.set_weight(42)
    assert sics(again, b"SI") == b"S S       42.0 g"
    control.close()


def read_after_write(port: serial.Serial, command: bytes) -> bytes:
    port.write(command)
    return port.read(10)


def test_toledo_8217_weight_and_status_records(make_scale, open_port):
    scale = make_scale("toledo-8217")
    port = open_port(scale.pty_path, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN)
    scale.set_weight(1133.981)  # 2.5 lb
    port.write(b"W")
    assert port.read_until(b"\r") == b"\x02002.50\r"
    scale.set_weight(500, stable=False)
    port.write(b"W")
    status = port.read_until(b"\r")
    assert status[:2] == b"\x02?"
    assert status[2] & 0x61 == 0x61  # bits 5 and 6 always set, bit 0 motion
    scale.set_weight(0)
    port.write(b"Z")
    assert port.read_until(b"\r") == b"\x02?" + bytes([0x70]) + b"\r"  # center of zero
    scale.set_weight(9000)
    port.write(b"Z")
    assert port.read_until(b"\r")[2] & 0x08  # outside the zero capture range
    port.write(b"T")
    assert port.read_until(b"\r")[:2] == b"\x02?"
    scale.set_weight(9500)
    port.write(b"W")
    assert port.read_until(b"\r") == b"\x02001.10\r"
    scale.set_mode(overload=True)
    port.write(b"W")
    assert port.read_until(b"\r")[2] & 0x02
    scale.set_mode(overload=False, units="kg")
    port.write(b"W")
    assert port.read_until(b"\r") == b"\x0200.500kg\r"


def test_nci_scp12_frames(make_scale, open_port):
    scale = make_scale("nci-scp12")
    port = open_port(scale.pty_path)

    def ask(command: bytes) -> bytes:
        port.write(command + b"\r")
        return port.read_until(b"\x03")

    scale.set_weight(1133.981)
    assert ask(b"W") == b"\n   2.50lb\r\n00\r\x03"
    scale.set_weight(0)
    assert ask(b"S") == b"\n20\r\x03"  # byte 1 bit 1: at zero
    scale.set_weight(300, stable=False)
    assert ask(b"S") == b"\n10\r\x03"  # byte 1 bit 0: in motion
    scale.set_weight(300)
    assert ask(b"Z") == b"\n20\r\x03"
    assert ask(b"X") == b"\n?\r\x03"
    assert ask(b"U") == b"\nkg\r\n20\r\x03"
    scale.set_weight(1300)
    assert ask(b"W") == b"\n  1.000kg\r\n00\r\x03"
    scale.set_mode(overload=True)
    assert ask(b"W") == b"\n02\r\x03"  # status only; byte 2 bit 1: over capacity


def test_cas_streams_continuously_and_marks_state(make_scale, open_port):
    scale = make_scale("cas", interval_s=0.02)
    port = open_port(scale.pty_path)
    scale.set_weight(1234)
    port.reset_input_buffer()

    def next_line() -> bytes:
        port.read_until(b"\r\n")  # skip a possibly partial line
        return port.read_until(b"\r\n")

    wait_until(lambda: next_line() == b"ST,GS,+  1.234kg\r\n", what="stable line")
    assert len(b"ST,GS,+  1.234kg\r\n") == 18
    scale.set_weight(700, stable=False)
    wait_until(lambda: next_line().startswith(b"US,GS,+  0.700kg"), what="unstable line")
    scale.set_weight(700)
    port.write(b"T\r\n")
    wait_until(lambda: next_line() == b"ST,NT,+  0.000kg\r\n", what="net line after tare")
    scale.set_mode(overload=True)
    wait_until(lambda: next_line().startswith(b"OL,"), what="overload line")


def test_cas_output_nobody_reads_is_dropped_not_piled_up(make_scale, open_port):
    scale = make_scale("cas", interval_s=0.005)
    wait_until(lambda: scale.status()["frames_sent"] > 150, what="frames streamed with no reader")
    port = open_port(scale.pty_path, timeout=0.5)
    backlog = port.in_waiting
    assert backlog <= 1024


def test_scale_control_api(make_scale):
    scale = make_scale("mt-sics")
    with httpx.Client(base_url=f"http://{scale.control_address}") as control:
        state = control.get("/").json()
        assert state["pty"] == scale.pty_path
        assert state["protocol"] == "mt-sics"
        assert {"pty", "link", "control", "protocol", "grams", "stable"} <= set(state)
        assert control.post("/weight", json={"grams": 1234, "stable": True}).json()["grams"] == 1234
        cases = [
            ("/weight", {"grams": "heavy"}, "invalid_weight"),
            ("/weight", {"grams": True}, "invalid_weight"),
            ("/weight", {"grams": 1e12}, "invalid_weight"),
            ("/weight", {"grams": 5, "stable": "yes"}, "invalid_stable"),
            ("/weight", {"grams": 5, "colour": "red"}, "unknown_field"),
            ("/mode", {"wobble": True}, "invalid_mode"),
            ("/mode", {"swing": "on"}, "invalid_mode"),
            ("/mode", {"units": "stone"}, "invalid_mode"),
            ("/mode", {}, "empty_mode"),
        ]
        for path, body, code in cases:
            response = control.post(path, json=body)
            assert response.status_code == 400, (path, body)
            assert response.json()["error"]["code"] == code
        bad = control.post("/weight", content=b"nope")
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_json"
        assert control.get("/").json()["grams"] == 1234
