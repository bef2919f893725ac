"""The `stall` fault over real sockets: the printer stops reading in the middle of a label.

A printer whose receive buffer fills during a long job keeps the connection open and stops
reading it; the TCP window closes and the host's writes block. The mock does that on the next
label after `stall` is put in force, and reads again when it is cleared. With a small receive
buffer and Ethernet's segment size on its port, the host blocks after about a hundred
kilobytes instead of the megabytes loopback's defaults let a sender queue.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from hardware_mocks import MockPrinter
from hardware_mocks.cli import main
from tests.hardware_mocks.mock_peers import fields_of, label, wait_until

# Far more than the socket buffers on both sides can hold once the printer stops reading.
BIG_TEXT = "G" * (3 * 1024 * 1024)


@pytest.fixture
def small_printer() -> Iterator[MockPrinter]:
    """A printer with a small device's TCP shape: 4 KB receive buffer, 1460-byte segments."""
    mock = MockPrinter(port=0, control_port=0, receive_buffer_bytes=4096, mss_bytes=1460).start()
    try:
        yield mock
    finally:
        mock.stop()


def _fill(sock: socket.socket, data: bytes) -> int:
    """Write `data` without blocking until the socket takes no more; how many bytes it took."""
    sock.setblocking(False)
    sent = 0
    while sent < len(data):
        try:
            sent += sock.send(data[sent:])
        except BlockingIOError:
            # The window may reopen for a moment while the printer's last read drains: look again.
            if not wait_for_room(sock):
                break
    return sent


def wait_for_room(sock: socket.socket, timeout_s: float = 0.5) -> bool:
    """Whether the socket has room for more within `timeout_s`."""
    _, writable, _ = select.select([], [sock], [], timeout_s)
    return bool(writable)


def test_stall_blocks_the_sender_mid_label_and_clearing_prints_every_label_once(small_printer):
    printer = small_printer
    host = socket.create_connection(("127.0.0.1", printer.port), timeout=5)
    try:
        # Put in force, it changes nothing until a label starts: status is answered as usual.
        assert printer.set_fault("stall")["stalled_connections"] == 0
        host.sendall(b"~HS")
        reply = b""
        while reply.count(b"\r\n") < 3:
            reply += host.recv(1024)
        assert b"\x02" in reply

        data = label("first") + label(BIG_TEXT) + label("after")
        sent = _fill(host, data)
        assert sent < len(data), "the printer kept reading in the middle of a label while stalled"
        # Everything the host could queue is in the socket buffers, not in the printer.
        assert sent < 1024 * 1024
        status = printer.status()
        assert status["stalled_connections"] == 1
        assert status["fault"] == "stall"
        assert printer.labels() == []

        cleared = printer.set_fault("none")
        assert cleared["fault"] == "none"
        host.setblocking(True)
        host.sendall(data[sent:])
        labels = printer.wait_for_labels(3)
        assert [entry["fields"] for entry in labels] == [["first"], [BIG_TEXT], ["after"]]
        assert printer.status()["stalled_connections"] == 0
    finally:
        host.close()


def test_a_connection_closed_while_stalled_prints_its_whole_labels_once_and_never_the_cut_one(small_printer):
    printer = small_printer
    printer.set_fault("stall")
    host = socket.create_connection(("127.0.0.1", printer.port), timeout=5)
    data = label("whole") + label(BIG_TEXT)
    sent = _fill(host, data)
    assert sent < len(data)
    # The host goes away (a killed process) with the second label cut off in the middle.
    host.close()
    assert printer.labels() == []
    printer.set_fault("none")
    assert fields_of(printer.wait_for_labels(1)) == [["whole"]]
    wait_until(lambda: printer.status()["discarded_partial_formats"] == 1, what="the cut label discarded")
    assert fields_of(printer.labels()) == [["whole"]]
    # The printer reads and prints for the next host as before.
    again = socket.create_connection(("127.0.0.1", printer.port), timeout=5)
    try:
        again.sendall(label("next"))
        assert fields_of(printer.wait_for_labels(2)) == [["whole"], ["next"]]
    finally:
        again.close()


def test_other_faults_end_a_stall_too(printer, connect):
    printer.set_fault("stall")
    host = connect(printer.port)
    host.send(label("waits"))
    wait_until(lambda: printer.status()["stalled_connections"] == 1, what="the connection to stall")
    assert printer.labels() == []
    # paper_out ends the stall: the label is read and then held like any other under paper out.
    printer.set_fault("paper_out")
    assert host.host_status()[0][4] == "001"
    printer.set_fault("none")
    assert fields_of(printer.wait_for_labels(1)) == [["waits"]]


def test_fault_api_names_stall_among_the_faults(printer_control):
    response = printer_control.post("/fault", json={"fault": "stalled"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_fault"
    assert "stall" in error["message"].split("send one of ")[1].split(", ")
    assert printer_control.post("/fault", json={"fault": "stall"}).json()["fault"] == "stall"


@pytest.mark.parametrize(
    ("option", "value", "name"),
    [
        ("receive_buffer_bytes", 10, "receive_buffer_bytes"),
        ("receive_buffer_bytes", 2**40, "receive_buffer_bytes"),
        ("receive_buffer_bytes", "4096", "receive_buffer_bytes"),
        ("mss_bytes", 100, "mss_bytes"),
        ("mss_bytes", 65_536, "mss_bytes"),
        ("mss_bytes", True, "mss_bytes"),
    ],
)
def test_tcp_shape_options_refuse_values_no_device_has(option, value, name):
    with pytest.raises(ValueError, match=f"{name} must be a whole number of bytes from"):
        MockPrinter(port=0, control_port=0, **{option: value})


@pytest.mark.parametrize(("option", "value"), [("--receive-buffer", "12"), ("--mss", "70000")])
def test_cli_refuses_tcp_shape_values_out_of_range(option, value):
    result = CliRunner().invoke(main, ["printer", option, value])
    assert result.exit_code == 2
    assert option in result.output
    assert "is not in the range" in result.output
