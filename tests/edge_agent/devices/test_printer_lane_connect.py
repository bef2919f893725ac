"""A lane's first connection: a printer that takes it but never says its serial number (many
receipt printers have no GS I) is connected and prints, known by its configured id; one that
cannot be reached is offline."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from edge_agent.devices import PrinterConfig
from edge_agent.devices.escpos_printer import EscposPrinter
from edge_agent.devices.printer_lane import PrinterLane
from hardware_mocks.printer import MockPrinter


@pytest.fixture
def silent_about_serial() -> Iterator[MockPrinter]:
    # The mock ESC/POS printer answers DLE EOT status but not GS I, like many real ones.
    mock = MockPrinter(port=0, control_port=0, language="escpos", serial="EQUIET1").start()
    try:
        yield mock
    finally:
        mock.stop()


def _connected_lane(config: PrinterConfig) -> PrinterLane:
    lane = PrinterLane(config, EscposPrinter(config, status_timeout_s=0.3))
    lane.connect_in_background()
    lane._thread.submit(lambda: None).result(timeout=10)  # the connect ran before this
    return lane


def test_a_printer_without_a_serial_number_answer_is_connected_and_prints(
    silent_about_serial: MockPrinter,
) -> None:
    config = PrinterConfig(id="S1-slip", language="escpos", host="127.0.0.1", port=silent_about_serial.port)
    lane = _connected_lane(config)
    try:
        assert (lane.state, lane.hardware_id, lane.faulted) == ("ready", "S1-slip", False)
        lane._thread.submit(lane.printer.send, b"\x1b@DOCK-1\n\x1dV\x00").result(timeout=10)
        (slip,) = silent_about_serial.wait_for_labels(1)
        assert "DOCK-1" in "\n".join(slip["fields"])
    finally:
        lane.close()


def test_a_printer_nobody_answers_at_is_offline() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = PrinterConfig(id="S1-gone", language="escpos", host="127.0.0.1", port=port)
    lane = _connected_lane(config)
    try:
        assert (lane.state, lane.faulted) == ("offline", True)
        assert "cannot be reached" in lane.message
    finally:
        lane.close()
