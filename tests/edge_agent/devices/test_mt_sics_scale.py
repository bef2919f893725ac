"""The MT-SICS driver: the pure reply parser (examples and fuzzing) and the driver on a real pty."""

from __future__ import annotations

import contextlib
import os
import pty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockside.errors import ScaleError
from edge_agent.devices import ScaleConfig, open_scale
from edge_agent.devices.mt_sics import MtSicsScale, SicsReply, parse_sics_reply, weight_from_sics
from edge_agent.devices.scale import grams_from
from edge_agent.devices.serial_line import SerialLine
from tests.edge_agent.devices.conftest import Sics


@pytest.mark.parametrize(
    ("line", "grams", "stable"),
    [
        (b"S S      1.250 kg\r\n", 1250, True),
        (b"S D      1.250 kg\r\n", 1250, False),
        (b"S S     -0.125 kg\r\n", -125, True),
        (b"S S    850.4 g\r\n", 850, True),
        (b"S S   2.00 lb\r\n", 907, True),
        (b"S S   16.0 oz\r\n", 454, True),
        (b"S S 1250000 mg\r\n", 1250, True),
        (b"S S 0.0005 t", 500, True),
    ],
)
def test_weights_are_normalised_to_grams(line: bytes, grams: int, stable: bool) -> None:
    assert weight_from_sics(parse_sics_reply(line)) == (grams, stable)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"S +\r\n", "scale_overload"),
        (b"S -\r\n", "scale_underload"),
        (b"S I\r\n", "scale_busy"),
        (b"ES\r\n", "scale_command_rejected"),
        (b"ET\r\n", "scale_garbled_frame"),
        (b"EL\r\n", "scale_command_rejected"),
        (b"Z A\r\n", "scale_garbled_frame"),  # a late answer to another command
        (b"S S      1.250 st\r\n", "scale_unit_unsupported"),
        (b"S S\r\n", "scale_garbled_frame"),
    ],
)
def test_replies_without_a_usable_weight(line: bytes, code: str) -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_sics(parse_sics_reply(line))
    assert caught.value.code == code


@pytest.mark.parametrize(
    "line", [b"", b"\xff\xfe", b"hello world", b"S S 1.2.3 kg", b"S S abc kg", b"s s 1 g"]
)
def test_garbage_lines(line: bytes) -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_sics(parse_sics_reply(line))
    assert caught.value.code in {"scale_garbled_frame", "scale_unit_unsupported"}


def test_overload_message_tells_what_to_do() -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_sics(SicsReply("S", "+"))
    assert "take the parcel off" in caught.value.message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1024))
def test_fuzzed_lines_raise_only_scale_error(line: bytes) -> None:
    try:
        grams, stable = weight_from_sics(parse_sics_reply(line))
    except ScaleError:
        return
    assert isinstance(grams, int)
    assert isinstance(stable, bool)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["S", "SI", "Z", "T", "TAC", "ES", "X"]),
    st.sampled_from(["S", "D", "I", "+", "-", "A", "", "?"]),
    st.text(alphabet="+-. 0123456789e", max_size=25),
    st.text(alphabet="gkmlbozt%", max_size=4),
)
def test_fuzzed_reply_shapes_raise_only_scale_error(command: str, status: str, value: str, unit: str) -> None:
    line = f"{command} {status} {value} {unit}".encode()
    try:
        grams, _ = weight_from_sics(parse_sics_reply(line))
    except ScaleError:
        return
    assert abs(grams) <= 10**10


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.text(max_size=5))
def test_unit_conversion_raises_only_scale_error(value: str, unit: str) -> None:
    with contextlib.suppress(ScaleError):
        grams_from(value, unit)


# -- the driver on a real pty -----------------------------------------------------------------


@pytest.fixture
def scale(sics: Sics):
    peer, _ = sics
    driver = MtSicsScale(
        ScaleConfig(protocol="mt-sics", port=peer.path), read_timeout_s=0.3, command_timeout_s=0.5
    )
    driver.open()
    yield driver
    driver.close()


def test_open_scale_picks_mt_sics(sics: Sics) -> None:
    peer, _ = sics
    driver = open_scale(ScaleConfig.from_dict({"protocol": "mt-sics", "port": peer.path}))
    assert isinstance(driver, MtSicsScale)


def test_reads_the_weight_on_the_pty(scale: MtSicsScale, sics: Sics) -> None:
    peer, balance = sics
    balance.value = "1.234"
    got = scale.read()
    assert (got.grams, got.stable) == (1234, True)
    balance.mode = "D"
    balance.value = "1.300"
    got = scale.read()
    assert (got.grams, got.stable) == (1300, False)
    assert peer.commands[-1] == b"SI"


def test_overload_on_the_pty(scale: MtSicsScale, sics: Sics) -> None:
    _, balance = sics
    balance.mode = "+"
    with pytest.raises(ScaleError) as caught:
        scale.read()
    assert caught.value.code == "scale_overload"


def test_zero_and_tare(scale: MtSicsScale, sics: Sics) -> None:
    peer, balance = sics
    scale.zero()
    scale.tare()
    scale.clear_tare()
    assert peer.commands[-3:] == [b"Z", b"T", b"TAC"]
    balance.zero_reply = "Z I"
    with pytest.raises(ScaleError) as caught:
        scale.zero()
    assert caught.value.code == "scale_busy"
    balance.zero_reply = "Z +"
    with pytest.raises(ScaleError) as caught:
        scale.zero()
    assert caught.value.code == "scale_zero_out_of_range"
    balance.tare_reply = "T -"
    with pytest.raises(ScaleError) as caught:
        scale.tare()
    assert caught.value.code == "scale_zero_out_of_range"


def test_silent_scale_is_not_answering(scale: MtSicsScale, sics: Sics) -> None:
    _, balance = sics
    balance.answer = False
    with pytest.raises(ScaleError) as caught:
        scale.read()
    assert caught.value.code == "scale_not_answering"
    assert "did not answer" in caught.value.message


def test_noise_before_a_command_is_discarded(scale: MtSicsScale, sics: Sics) -> None:
    peer, balance = sics
    balance.value = "0.500"
    peer.write(b"\x00\xffgarbage S S 9.999 kg\r\n")
    assert scale.read().grams == 500


def test_missing_port_is_unplugged(tmp_path) -> None:
    driver = MtSicsScale(ScaleConfig(protocol="mt-sics", port=str(tmp_path / "ttyUSB9")))
    with pytest.raises(ScaleError) as caught:
        driver.open()
    assert caught.value.code == "scale_unplugged"
    assert "ttyUSB9" in caught.value.message


def test_unplugged_while_open(scale: MtSicsScale, sics: Sics) -> None:
    peer, _ = sics
    assert scale.read().grams == 0
    peer.unplug()
    with pytest.raises(ScaleError) as caught:
        scale.read()
    assert caught.value.code == "scale_unplugged"


@pytest.mark.parametrize("step", ["discard_input", "write", "read_frame"])
def test_a_port_whose_other_end_went_away_is_unplugged_at_every_step(step: str) -> None:
    # A pty whose other end closed fails `tcflush` with termios' own error (not an OSError) and
    # reads and writes with EIO: each must be the reconnecting `scale_unplugged`, never a crash
    # of the reader (which used to wait its longest backoff before looking for the scale again).
    master, slave = pty.openpty()
    line = SerialLine(os.ttyname(slave), baudrate=9600)
    line.open()
    os.close(master)
    os.close(slave)
    calls = {
        "discard_input": line.discard_input,
        "write": lambda: line.write(b"SI\r\n"),
        "read_frame": lambda: line.read_frame(b"\r\n", 0.2),
    }
    with pytest.raises(ScaleError) as caught:
        calls[step]()
    assert caught.value.code == "scale_unplugged"
    assert "reconnects by itself" in caught.value.message
