"""Scale errors carry the type the agent decides by, beside the code the wire shows.

The reader reopens a port on `ScalePortLost`, keeps a moving scale `ok` on `ScaleUnsettled`,
counts `ScaleGarbledFrame` as noise; discovery takes `ScaleWithoutWeight` as proof that a scale
spoke the protocol. Each driver's failures are pinned here to both their type and their code.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dockside.errors import (
    ScaleError,
    ScaleGarbledFrame,
    ScalePortLost,
    ScaleUnsettled,
    ScaleWithoutWeight,
)
from edge_agent.devices import ScaleConfig, ScaleReader
from edge_agent.devices.cas import parse_cas_line, weight_from_cas
from edge_agent.devices.mt_sics import parse_sics_reply, weight_from_sics
from edge_agent.devices.nci_scp12 import parse_nci_reply, weight_from_nci
from edge_agent.devices.scale_drivers import open_scale, weigh_once
from edge_agent.devices.toledo_8217 import parse_8217_reply, weight_from_8217
from tests.edge_agent.devices.conftest import wait_for
from tests.edge_agent.scripted_scale import ScaleScript


def _toledo(frame: bytes) -> object:
    return weight_from_8217(parse_8217_reply(frame))


def _nci(frame: bytes) -> object:
    return weight_from_nci(parse_nci_reply(frame))


def _cas(frame: bytes) -> object:
    return weight_from_cas(parse_cas_line(frame))


def _sics(frame: bytes) -> object:
    return weight_from_sics(parse_sics_reply(frame))


@pytest.mark.parametrize(
    ("weigh", "frame", "kind", "code"),
    [
        (_toledo, b"\x02?\x61\r", ScaleUnsettled, "scale_unstable"),
        (_toledo, b"\x02?\x70\r", ScaleUnsettled, "scale_busy"),
        (_toledo, b"\x02?\x62\r", ScaleWithoutWeight, "scale_overload"),
        (_toledo, b"\x02?\x64\r", ScaleWithoutWeight, "scale_underload"),
        (_toledo, b"\x02?\x68\r", ScaleWithoutWeight, "scale_zero_out_of_range"),
        (_toledo, b"\x02abc\r", ScaleGarbledFrame, "scale_garbled_frame"),
        (_toledo, b"\x02?\r", ScaleError, "scale_command_rejected"),
        (_nci, b"\n\x31\x30\r\x03", ScaleUnsettled, "scale_unstable"),
        (_nci, b"\n\x30\x30\r\x03", ScaleUnsettled, "scale_busy"),
        (_nci, b"\n\x30\x32\r\x03", ScaleWithoutWeight, "scale_overload"),
        (_nci, b"\n\x34\x30\r\x03", ScaleWithoutWeight, "scale_fault"),
        (_nci, b"\n12.5xx\r\n\x30\x30\r\x03", ScaleWithoutWeight, "scale_unit_unsupported"),
        (_nci, b"\nabc\r\n\x30\x30\r\x03", ScaleGarbledFrame, "scale_garbled_frame"),
        (_nci, b"\n?\r\x03", ScaleError, "scale_command_rejected"),
        (_cas, b"OL,GS,+999999kg\r\n", ScaleWithoutWeight, "scale_overload"),
        (_cas, b"XX,GS,  1.0kg\r\n", ScaleGarbledFrame, "scale_garbled_frame"),
        (_sics, b"S I\r\n", ScaleUnsettled, "scale_busy"),
        (_sics, b"S +\r\n", ScaleWithoutWeight, "scale_overload"),
        (_sics, b"ET\r\n", ScaleGarbledFrame, "scale_garbled_frame"),
        (_sics, b"ES\r\n", ScaleError, "scale_command_rejected"),
    ],
)
def test_each_failure_has_its_type_and_its_code(
    weigh: Callable[[bytes], object], frame: bytes, kind: type[ScaleError], code: str
) -> None:
    with pytest.raises(ScaleError) as caught:
        weigh(frame)
    assert type(caught.value) is kind
    assert caught.value.code == code


def test_a_missing_port_is_a_lost_port(tmp_path) -> None:
    with pytest.raises(ScalePortLost) as caught:
        weigh_once(ScaleConfig(protocol="nci-scp12", port=str(tmp_path / "ttyUSB9")), read_timeout_s=0.1)
    assert caught.value.code == "scale_unplugged"


def test_an_unknown_protocol_is_refused_by_the_factory() -> None:
    with pytest.raises(ScaleError) as caught:
        open_scale(ScaleConfig(protocol="dibal", port="/dev/null"))
    assert caught.value.code == "scale_protocol_unsupported"


def _reader(script: ScaleScript) -> ScaleReader:
    return ScaleReader(
        ScaleConfig(protocol="mt-sics", port="/dev/scripted"),
        poll_interval_s=0.005,
        reopen_backoff_s=(0.005, 0.01),
        scale_factory=script.driver,
    )


def test_the_reader_reopens_the_port_on_a_lost_port_whatever_its_code() -> None:
    script = ScaleScript(reads=[ScalePortLost("the scale may not be opened", code="scale_port_denied")])
    reader = _reader(script)
    with reader:
        assert reader.wait_stable(5.0).grams == 500
    assert script.opened == 2


def test_the_reader_keeps_the_port_and_stays_ok_while_the_scale_is_unsettled() -> None:
    script = ScaleScript(reads=[ScaleUnsettled("the scale is taring", code="scale_busy")] * 10_000)
    reader = _reader(script)
    with reader:
        wait_for(lambda: reader.message == "the scale is taring", what="the unsettled scale's message")
        assert reader.state == "ok"
        assert reader.stable_weight() is None
    assert script.opened == 1
