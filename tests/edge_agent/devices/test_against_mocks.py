"""The drivers against the team's hardware mocks (`hardware_mocks`): a second, independent peer.

The mocks are written from the same manuals by another engineer and share no code with the
drivers, so a protocol misreading on either side shows up here.
"""

from __future__ import annotations

import pytest

from dockside.errors import PrinterError, ScaleError
from edge_agent.devices import PrinterConfig, ScaleConfig, ScaleReader, open_printer
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.devices.conftest import wait_for

LABEL = b"^XA^FO50,50^A0N,40,40^FDDEMO-0001^FS^XZ"
SLIP = b"\x1b@Packing slip DEMO-0001\n\x1dV\x00"


@pytest.fixture
def zebra_mock():
    with MockPrinter(port=0, control_port=0, serial="XXZJ999000111", model="ZD421") as printer:
        yield printer


@pytest.fixture
def zpl(zebra_mock: MockPrinter):
    driver = open_printer(
        PrinterConfig(id="ZD421-S1", language="zpl", host="127.0.0.1", port=zebra_mock.port, model="ZD421")
    )
    yield driver
    driver.close()


def test_zpl_labels_reach_the_mock_printer(zpl, zebra_mock: MockPrinter) -> None:
    for _ in range(20):
        zpl.send(LABEL)
    labels = zebra_mock.wait_for_labels(20)
    assert len(labels) == 20
    assert zebra_mock.status()["connections_total"] == 1


@pytest.mark.parametrize("fault", ["paper_out", "head_open", "paused", "ribbon_out"])
def test_zpl_fault_is_reported(zpl, zebra_mock: MockPrinter, fault: str) -> None:
    assert zpl.status().ready
    zebra_mock.set_fault(fault)
    status = zpl.status()
    assert fault in status.faults
    assert not status.ready
    zebra_mock.set_fault("none")
    assert zpl.status().ready


def test_zpl_label_held_while_paper_out_prints_after(zpl, zebra_mock: MockPrinter) -> None:
    zebra_mock.set_fault("paper_out")
    zpl.send(LABEL)
    wait_for(lambda: (zpl.status().formats_in_buffer or 0) == 1, what="the label held in the buffer")
    assert zebra_mock.labels() == []
    zebra_mock.set_fault("none")
    assert len(zebra_mock.wait_for_labels(1)) == 1


def test_zpl_silent_mock_is_no_answer(zpl, zebra_mock: MockPrinter) -> None:
    zpl.send(LABEL)
    zebra_mock.set_fault("silent")
    assert zpl.status().faults == {"no_answer"}


def test_zpl_offline_mock_is_unreachable(zpl, zebra_mock: MockPrinter) -> None:
    zebra_mock.set_fault("offline")
    zpl.close()
    assert "offline" in zpl.status().faults
    with pytest.raises(PrinterError) as caught:
        zpl.send(LABEL)
    assert caught.value.code == "printer_unreachable"
    zebra_mock.set_fault("none")
    wait_for(lambda: zpl.status().ready, what="the printer back online")
    zpl.send(LABEL)
    zebra_mock.wait_for_labels(1)


def test_zpl_identify_reads_the_mock_serial(zpl, zebra_mock: MockPrinter) -> None:
    assert zpl.identify() == "XXZJ999000111"


def test_escpos_against_the_mock() -> None:
    with MockPrinter(port=0, control_port=0, language="escpos", model="TM-T88VI") as mock:
        driver = open_printer(PrinterConfig(id="TM-S1", language="escpos", host="127.0.0.1", port=mock.port))
        try:
            driver.send(SLIP)
            mock.wait_for_labels(1)
            assert driver.status().ready
            mock.set_fault("paper_out")
            assert driver.status().faults == {"paper_out"}
            mock.set_fault("head_open")
            assert driver.status().faults == {"head_open"}
            mock.set_fault("silent")
            assert driver.status().faults == {"no_answer"}
        finally:
            driver.close()


# -- scales ----------------------------------------------------------------------------------------


@pytest.fixture(params=[("mt-sics", "g"), ("toledo-8217", "kg"), ("nci-scp12", "g"), ("cas", "kg")])
def mock_scale(request, tmp_path):
    protocol, units = request.param
    with MockScale(
        protocol=protocol, control_port=0, link=tmp_path / "scale", units=units, interval_s=0.02
    ) as scale:
        yield protocol, scale


@pytest.fixture
def reader(mock_scale):
    protocol, scale = mock_scale
    scale_reader = ScaleReader(
        ScaleConfig(protocol=protocol, port=str(scale.link)),
        poll_interval_s=0.01,
        reopen_backoff_s=(0.02, 0.1),
    )
    scale_reader.start()
    yield scale_reader
    scale_reader.stop()


def test_reader_takes_the_stable_weight(reader: ScaleReader, mock_scale) -> None:
    _, scale = mock_scale
    scale.set_weight(1234, stable=True)
    wait_for(lambda: (r := reader.stable_weight()) is not None and r.grams == 1234, what="1234 g stable")
    assert reader.state == "ok"


def test_reader_sees_overload(reader: ScaleReader, mock_scale) -> None:
    _, scale = mock_scale
    scale.set_weight(500, stable=True)
    reader.wait_stable(5.0)
    scale.set_mode(overload=True)
    wait_for(lambda: reader.state == "overload", what="overload")
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.1)
    assert caught.value.code == "scale_overload"


def test_reader_survives_noise(reader: ScaleReader, mock_scale) -> None:
    protocol, scale = mock_scale
    scale.set_weight(750, stable=True)
    scale.set_mode(noise=True)
    before = reader.readings_total
    wait_for(lambda: reader.readings_total > before + 10, what="readings through the noise")
    assert reader.wait_stable(5.0).grams == 750
    if protocol != "cas":  # a continuous reader skips straight to the newest line, noise or not
        assert reader.garbled_total > 0


def test_reader_comes_back_after_unplug(reader: ScaleReader, mock_scale) -> None:
    _, scale = mock_scale
    scale.set_weight(900, stable=True)
    reader.wait_stable(5.0)
    scale.set_mode(unplug=True)
    wait_for(lambda: reader.state == "unplugged", what="unplugged")
    scale.set_weight(950, stable=True)
    scale.set_mode(unplug=False)
    wait_for(
        lambda: (r := reader.stable_weight()) is not None and r.grams == 950, 10.0, what="950 g after replug"
    )


def test_reader_notices_a_silent_scale(reader: ScaleReader, mock_scale) -> None:
    _, scale = mock_scale
    scale.set_weight(300, stable=True)
    reader.wait_stable(5.0)
    scale.set_mode(silent=True)
    wait_for(lambda: reader.state == "not_answering", what="not_answering")
    with pytest.raises(ScaleError) as caught:
        reader.wait_stable(0.1)
    assert caught.value.code == "scale_not_answering"
