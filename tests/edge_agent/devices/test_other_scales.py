"""Toledo 8217, NCI SCP-12 and CAS: pure frame parsers (examples and fuzzing) and drivers on real ptys."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockside.errors import ScaleError
from edge_agent.devices import ScaleConfig, ScaleReader, open_scale
from edge_agent.devices.cas import CasScale, parse_cas_line, weight_from_cas
from edge_agent.devices.nci_scp12 import NciScp12Scale, parse_nci_reply, weight_from_nci
from edge_agent.devices.toledo_8217 import Toledo8217Scale, parse_8217_reply, weight_from_8217
from tests.edge_agent.devices.conftest import PtyScalePeer, wait_for

# -- Toledo 8217 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "grams"),
    [
        (b"\x02001.25\r", 567),  # pounds when no unit is sent
        (b"\x0201.250kg\r", 1250),
        (b"\x02  0.575KG\r", 575),
        (b"\x02 850g\r", 850),
        (b"noise\x02002.00\r", 907),  # resynchronised on the last STX
    ],
)
def test_8217_weight_records(frame: bytes, grams: int) -> None:
    assert weight_from_8217(parse_8217_reply(frame)) == (grams, True)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (0x61, "scale_unstable"),
        (0x62, "scale_overload"),
        (0x64, "scale_underload"),
        (0x68, "scale_zero_out_of_range"),
        (0x70, "scale_busy"),  # center of zero, but a status instead of a weight
    ],
)
def test_8217_status_records(status: int, code: str) -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_8217(parse_8217_reply(b"\x02?" + bytes([status]) + b"\r"))
    assert caught.value.code == code


@pytest.mark.parametrize(
    "frame", [b"", b"001.25\r", b"\x02?\x01\r", b"\x02abc\r", b"\x02?ab\r", b"\x021.2.3\r"]
)
def test_8217_garbage(frame: bytes) -> None:
    with pytest.raises(ScaleError):
        weight_from_8217(parse_8217_reply(frame))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1024))
def test_8217_fuzz_raises_only_scale_error(frame: bytes) -> None:
    try:
        grams, stable = weight_from_8217(parse_8217_reply(frame))
    except ScaleError:
        return
    assert stable
    assert isinstance(grams, int)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789. -?kglbKGLB", max_size=14), st.integers(0, 127))
def test_8217_fuzz_shaped_raises_only_scale_error(body: str, status: int) -> None:
    for frame in (b"\x02" + body.encode() + b"\r", b"\x02?" + bytes([status]) + b"\r"):
        with contextlib.suppress(ScaleError):
            weight_from_8217(parse_8217_reply(frame))


class Toledo:
    """A scale in 8217 mode: single-letter commands, 7E1 with the parity bit on the wire."""

    def __init__(self) -> None:
        self.weight = "001.25"
        self.status: int | None = None  # a status record instead of the weight

    def __call__(self, command: bytes) -> bytes | None:
        if command == b"W":
            if self.status is not None:
                return b"\x02?" + bytes([self.status]) + b"\r"
            return b"\x02" + self.weight.encode() + b"\r"
        if command in (b"Z", b"T"):
            return b"\x02?" + bytes([self.status or 0x70]) + b"\r"
        return b"\x02?\r"


@pytest.fixture
def toledo(tmp_path):
    state = Toledo()
    peer = PtyScalePeer(tmp_path, state, terminator=b"", seven_bit_parity=True)
    yield peer, state
    peer.close()


def test_8217_on_a_pty_with_parity_bits(toledo) -> None:
    peer, state = toledo
    scale = open_scale(ScaleConfig(protocol="toledo-8217", port=peer.path))
    assert isinstance(scale, Toledo8217Scale)
    scale.open()
    try:
        got = scale.read()
        assert (got.grams, got.stable) == (567, True)
        state.weight = "02.000kg"
        assert scale.read().grams == 2000
        scale.zero()
        scale.tare()
        state.status = 0x61
        with pytest.raises(ScaleError) as caught:
            scale.read()
        assert caught.value.code == "scale_unstable"
        with pytest.raises(ScaleError) as caught:
            scale.zero()
        assert caught.value.code == "scale_busy"
        assert peer.commands[:2] == [b"W", b"W"]
    finally:
        scale.close()


# -- NCI SCP-12 ------------------------------------------------------------------------------------

OK_STATUS = b"\x30\x30"


def nci(weight: bytes | None, status: bytes = OK_STATUS) -> bytes:
    return (b"\n" + weight + b"\r" if weight is not None else b"") + b"\n" + status + b"\r\x03"


@pytest.mark.parametrize(
    ("frame", "grams", "stable"),
    [
        (nci(b"0001.25lb"), 567, True),
        (nci(b" 0.575kg"), 575, True),
        (nci(b" 1250g "), 1250, True),
        (nci(b"0001.30lb", b"\x31\x30"), 590, False),  # motion bit: a weight, not stable
        (nci(b"-0.010kg", b"\x30\x30\x34"), -10, True),  # third byte: net weight
    ],
)
def test_nci_weights(frame: bytes, grams: int, stable: bool) -> None:
    assert weight_from_nci(parse_nci_reply(frame)) == (grams, stable)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (nci(None, b"\x30\x32"), "scale_overload"),
        (nci(b"------", b"\x30\x32"), "scale_overload"),
        (nci(None, b"\x30\x31"), "scale_underload"),
        (nci(None, b"\x31\x30"), "scale_unstable"),
        (nci(None, b"\x34\x30"), "scale_fault"),
        (nci(None, b"\x30\x38"), "scale_fault"),
        (b"\n?\r\x03", "scale_command_rejected"),
        (nci(b"12.5xx"), "scale_unit_unsupported"),
        (nci(b"abc"), "scale_garbled_frame"),
        (nci(b"1.0lb", b"\x00\x00"), "scale_garbled_frame"),
        (b"0001.25lb\x03", "scale_garbled_frame"),
    ],
)
def test_nci_without_a_usable_weight(frame: bytes, code: str) -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_nci(parse_nci_reply(frame))
    assert caught.value.code == code


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1024))
def test_nci_fuzz_raises_only_scale_error(frame: bytes) -> None:
    try:
        grams, _ = weight_from_nci(parse_nci_reply(frame))
    except ScaleError:
        return
    assert isinstance(grams, int)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.text(alphabet="0123456789.- lbkgoz^", max_size=12)),
    st.binary(min_size=0, max_size=5),
)
def test_nci_fuzz_shaped_raises_only_scale_error(weight: str | None, status: bytes) -> None:
    with contextlib.suppress(ScaleError):
        weight_from_nci(parse_nci_reply(nci(None if weight is None else weight.encode(), status)))


class Nci:
    """An NCI scale: letter + CR commands, replies ending in ETX, 7E1."""

    def __init__(self) -> None:
        self.weight = b"0001.25lb"
        self.status = OK_STATUS

    def __call__(self, command: bytes) -> bytes | None:
        command = command.lstrip(b"\n")  # SCP-12 hosts may send LF W CR; the LF is not part of it
        if command == b"W":
            return nci(self.weight, self.status)
        if command in (b"Z", b"T", b"S"):
            return nci(None, self.status)
        return b"\n?\r\x03"


def test_nci_on_a_pty(tmp_path) -> None:
    state = Nci()
    peer = PtyScalePeer(tmp_path, state, terminator=b"\r", seven_bit_parity=True)
    scale = open_scale(ScaleConfig.from_dict({"protocol": "nci-scp12", "port": peer.path}))
    assert isinstance(scale, NciScp12Scale)
    try:
        scale.open()
        got = scale.read()
        assert (got.grams, got.stable) == (567, True)
        scale.zero()
        scale.tare()
        state.status = b"\x30\x32"
        with pytest.raises(ScaleError) as caught:
            scale.read()
        assert caught.value.code == "scale_overload"
        with pytest.raises(ScaleError) as caught:
            scale.zero()
        assert caught.value.code == "scale_zero_out_of_range"
        assert peer.commands[:3] == [b"W", b"Z", b"T"]
    finally:
        scale.close()
        peer.close()


# -- CAS continuous --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "grams", "stable"),
    [
        (b"ST,GS,  18.000kg\r\n", 18000, True),
        (b"US,NT,-  0.200kg\r\n", -200, False),
        (b"ST,GS,+0001.234kg\r\n", 1234, True),
        (b"ST,GS,1\xa0,   13.5 kg\r\n", 13500, True),  # 22-byte form with device id and lamp byte
        (b"ST,NT,  2.50lb", 1134, True),
    ],
)
def test_cas_lines(frame: bytes, grams: int, stable: bool) -> None:
    assert weight_from_cas(parse_cas_line(frame)) == (grams, stable)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"OL,GS,+999999kg\r\n", "scale_overload"),
        (b"OL,GS,-999999kg\r\n", "scale_underload"),
        (b"XX,GS,  1.0kg\r\n", "scale_garbled_frame"),
        (b"ST,GS\r\n", "scale_garbled_frame"),
        (b"ST,GS,abc\r\n", "scale_garbled_frame"),
        (b"ST,GS,123,1.0kg\r\n", "scale_garbled_frame"),
        (b"ST,GS,\xff1.0kg\r\n", "scale_garbled_frame"),
    ],
)
def test_cas_lines_without_a_usable_weight(frame: bytes, code: str) -> None:
    with pytest.raises(ScaleError) as caught:
        weight_from_cas(parse_cas_line(frame))
    assert caught.value.code == code


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1024))
def test_cas_fuzz_raises_only_scale_error(frame: bytes) -> None:
    try:
        grams, _ = weight_from_cas(parse_cas_line(frame))
    except ScaleError:
        return
    assert isinstance(grams, int)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["ST", "US", "OL", "XX", ""]),
    st.sampled_from(["GS", "NT", "??"]),
    st.text(alphabet="+-0123456789. kgltb", max_size=14),
)
def test_cas_fuzz_shaped_raises_only_scale_error(state: str, mode: str, weight: str) -> None:
    with contextlib.suppress(ScaleError):
        weight_from_cas(parse_cas_line(f"{state},{mode},{weight}\r\n".encode()))


def test_cas_stream_through_the_reader(tmp_path) -> None:
    peer = PtyScalePeer(tmp_path, lambda command: None)
    weights = itertools.count()
    current = {"line": b"ST,GS,  1.500kg\r\n"}

    def stream() -> bytes:
        next(weights)
        return current["line"]

    peer.stream = stream
    reader = ScaleReader(
        ScaleConfig(protocol="cas", port=peer.path),
        poll_interval_s=0.01,
        reopen_backoff_s=(0.02, 0.1),
        scale_factory=lambda config: CasScale(config, read_timeout_s=0.3),
    )
    reader.start()
    try:
        assert reader.wait_stable(5.0).grams == 1500
        current["line"] = b"US,GS,  2.100kg\r\n"
        wait_for(lambda: (r := reader.latest()) is not None and r.grams == 2100, what="the new weight")
        assert reader.stable_weight() is None
        current["line"] = b"ST,GS,  2.100kg\r\n"
        assert reader.wait_stable(5.0).grams == 2100
        with pytest.raises(ScaleError) as caught:
            reader.zero()
        assert caught.value.code == "scale_command_unsupported"
        assert "press ZERO" in caught.value.message
    finally:
        reader.stop()
        peer.close()
