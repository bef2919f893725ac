"""The ESC/POS driver over python-escpos against a real TCP peer; the DLE EOT parser and its fuzzing."""

from __future__ import annotations

import os
import pty
import threading
import tty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockside.errors import PrinterError
from edge_agent.devices import PrinterConfig, PrinterStatus, open_printer
from edge_agent.devices.escpos_printer import STATUS_REQUEST, EscposPrinter, parse_dle_eot, parse_usb_ids
from tests.edge_agent.devices.conftest import EscposPeer, wait_for

SLIP = b"\x1b@Packing slip DEMO-0001\n\x1dV\x00"


def config_for(port: int) -> PrinterConfig:
    return PrinterConfig.from_dict(
        {"id": "TM-S1", "language": "escpos", "host": "127.0.0.1", "port": port, "role": "slip"}
    )


@pytest.fixture
def printer(escpos_peer: EscposPeer):
    driver = EscposPrinter(config_for(escpos_peer.port), status_timeout_s=0.3)
    yield driver
    driver.close()


# -- the pure parser -----------------------------------------------------------------------------


def test_all_fine() -> None:
    assert parse_dle_eot(b"\x12\x12\x12", "TM-S1") == PrinterStatus(
        ready=True, faults=frozenset(), message="printer TM-S1 is ready"
    )


@pytest.mark.parametrize(
    ("reply", "faults"),
    [
        (b"\x1a\x16\x12", {"head_open"}),  # offline because the cover is open
        (b"\x1a\x32\x72", {"paper_out"}),  # offline, stopped at paper end, sensor says end
        (b"\x12\x12\x72", {"paper_out"}),  # sensor says end
        (b"\x1a\x52\x12", {"offline"}),  # error
        (b"\x1a\x12\x12", {"offline"}),  # offline, no cause given
    ],
)
def test_faults(reply: bytes, faults: set[str]) -> None:
    status = parse_dle_eot(reply, "TM-S1")
    assert status.faults == faults
    assert not status.ready
    assert "TM-S1" in status.message


def test_paper_near_end_is_a_note_not_a_fault() -> None:
    status = parse_dle_eot(b"\x12\x12\x1e")
    assert status.ready
    assert "running low" in status.message


@pytest.mark.parametrize("reply", [b"", b"\x12", b"\x12\x12"])
def test_empty_or_short_reply_is_no_answer_not_paper_ok(reply: bytes) -> None:
    status = parse_dle_eot(reply, "TM-S1")
    assert status.faults == {"no_answer"}
    assert not status.ready


@pytest.mark.parametrize("reply", [b"\x00\x00\x00", b"\xff\x12\x12", b"abc", b"\x12\x12\x13"])
def test_bytes_that_are_not_status_bytes(reply: bytes) -> None:
    with pytest.raises(PrinterError) as caught:
        parse_dle_eot(reply)
    assert caught.value.code == "printer_garbled_status"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=12))
def test_fuzzed_replies_raise_only_printer_error(reply: bytes) -> None:
    try:
        status = parse_dle_eot(reply)
    except PrinterError:
        return
    assert status.ready == (not status.faults)


def test_usb_ids() -> None:
    assert parse_usb_ids("04b8:0202") == (0x04B8, 0x0202)
    assert parse_usb_ids("0x04b8:0x0e15") == (0x04B8, 0x0E15)
    with pytest.raises(PrinterError):
        parse_usb_ids("epson")


# -- over a real socket ----------------------------------------------------------------------------


def test_open_printer_picks_escpos(escpos_peer: EscposPeer) -> None:
    driver = open_printer(config_for(escpos_peer.port))
    assert isinstance(driver, EscposPrinter)
    driver.close()


def test_slips_arrive_on_one_connection(printer: EscposPrinter, escpos_peer: EscposPeer) -> None:
    for _ in range(5):
        printer.send(SLIP)
    wait_for(lambda: escpos_peer.labels() == SLIP * 5, what="the slips")
    assert escpos_peer.connections == 1


def test_status_over_the_wire(printer: EscposPrinter, escpos_peer: EscposPeer) -> None:
    assert printer.status().ready
    escpos_peer.printer_byte, escpos_peer.cause_byte, escpos_peer.paper_byte = 0x1A, 0x32, 0x72
    status = printer.status()
    assert status.faults == {"paper_out"}
    assert "load a new roll" in status.message
    assert STATUS_REQUEST in escpos_peer.labels()


def test_silent_printer_is_no_answer(printer: EscposPrinter, escpos_peer: EscposPeer) -> None:
    escpos_peer.silent = True
    assert printer.status().faults == {"no_answer"}


def test_identify_reads_the_serial_number(printer: EscposPrinter, escpos_peer: EscposPeer) -> None:
    assert printer.identify() == "TM88-J2SF001234"
    escpos_peer.serial_number = None
    with pytest.raises(PrinterError) as caught:
        printer.identify()
    assert caught.value.code == "printer_unidentified"


def test_unreachable_printer() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    driver = EscposPrinter(config_for(port))
    with pytest.raises(PrinterError) as caught:
        driver.send(SLIP)
    assert caught.value.code == "printer_unreachable"
    assert f"127.0.0.1:{port}" in caught.value.message
    assert driver.status().faults == {"offline"}


def test_reconnects_after_the_printer_dropped_the_connection(
    printer: EscposPrinter, escpos_peer: EscposPeer
) -> None:
    printer.send(SLIP)
    wait_for(lambda: escpos_peer.labels() == SLIP, what="the first slip")
    escpos_peer.drop()
    wait_for(lambda: not escpos_peer._clients, what="the drop")
    printer.send(SLIP)
    wait_for(lambda: escpos_peer.labels() == SLIP * 2, what="the second slip")


def test_file_backend(tmp_path) -> None:
    path = tmp_path / "slips.bin"
    driver = open_printer(
        PrinterConfig.from_dict({"id": "F1", "language": "escpos", "connection": "file", "device": str(path)})
    )
    driver.send(SLIP)
    driver.send(SLIP)
    driver.close()
    assert path.read_bytes() == SLIP * 2
    assert driver.status().ready


def test_serial_backend_on_a_pty() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)
    received = bytearray()
    stop = threading.Event()

    def serve() -> None:
        import select

        while not stop.is_set():
            readable, _, _ = select.select([master], [], [], 0.01)
            if readable:
                data = os.read(master, 1024)
                received.extend(data)
                answers = data.count(b"\x10\x04")
                if answers:
                    os.write(master, b"\x12" * answers)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    driver = open_printer(
        PrinterConfig(id="TM-SER", language="escpos", connection="serial", device=os.ttyname(slave))
    )
    try:
        driver.send(SLIP)
        assert driver.status().ready
        wait_for(lambda: bytes(received).startswith(SLIP), what="the slip on the serial line")
    finally:
        driver.close()
        stop.set()
        thread.join(2)
        os.close(master)
        os.close(slave)


def test_usb_without_pyusb_says_what_to_install() -> None:
    driver = open_printer(PrinterConfig(id="TM-USB", language="escpos", connection="usb", device="04b8:0202"))
    with pytest.raises(PrinterError) as caught:
        driver.open()
    assert caught.value.code in {"printer_driver_missing", "printer_unreachable"}
