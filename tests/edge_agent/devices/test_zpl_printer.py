"""The ZPL driver against a real TCP printer peer: send, ~HS status, identity, faults and fuzzing."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockside.errors import PrinterError
from edge_agent.devices import PrinterConfig, PrinterStatus, open_printer
from edge_agent.devices.printer import InlineSender, status_of
from edge_agent.devices.printer_drivers import status_once
from edge_agent.devices.zpl import ZplPrinter, parse_host_status, parse_sgd_value
from tests.edge_agent.devices.conftest import ZebraPeer, host_status, wait_for

LABEL = b"^XA^FO50,50^A0N,40,40^FDDEMO-0001^FS^XZ"


def config_for(port: int, **extra: object) -> PrinterConfig:
    return PrinterConfig.from_dict(
        {"id": "ZD421-S1", "language": "zpl", "host": "127.0.0.1", "port": port, **extra}
    )


@pytest.fixture
def printer(zebra: ZebraPeer):
    driver = ZplPrinter(config_for(zebra.port), status_timeout_s=0.5)
    yield driver
    driver.close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the pure ~HS parser --------------------------------------------------------------------


def test_ready_printer_parses_ready() -> None:
    status = parse_host_status(host_status(), "ZD421-S1")
    assert status == PrinterStatus(ready=True, faults=frozenset(), message="printer ZD421-S1 is ready")
    assert status.formats_in_buffer == 0


@pytest.mark.parametrize(
    ("flags", "fault", "advice"),
    [
        ({"paper_out": 1}, "paper_out", "load labels"),
        ({"paused": 1}, "paused", "press PAUSE"),
        ({"buffer_full": 1}, "buffer_full", "wait"),
        ({"head_up": 1}, "head_open", "close the lid"),
        ({"ribbon_out": 1}, "ribbon_out", "ribbon"),
    ],
)
def test_each_fault_flag_maps_to_its_fault(flags: dict[str, int], fault: str, advice: str) -> None:
    status = parse_host_status(host_status(**flags), "ZD421-S1")
    assert not status.ready
    assert status.faults == {fault}
    assert "ZD421-S1" in status.message
    assert advice in status.message


def test_several_faults_and_waiting_formats() -> None:
    status = parse_host_status(host_status(paper_out=1, paused=1, formats=3), "P")
    assert status.faults == {"paper_out", "paused"}
    assert status.formats_in_buffer == 3
    assert "3 labels waiting" in status.message


def test_stale_bytes_before_the_reply_are_ignored() -> None:
    stale = b'"XXZ"\x02ZD421,V84\x03\r\n'
    assert parse_host_status(stale + host_status(paused=1)).faults == {"paused"}


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"hello",
        host_status()[:40],  # a reply cut short
        b"\x02a,b,c\x03\x02d\x03\x02e\x03",  # three strings but not ~HS
        host_status().replace(b"030,0,0", b"030,x,0"),  # a flag that is not a number
        host_status().replace(b"1218", b"\xff\xfe"),  # not ASCII
    ],
)
def test_garbage_is_a_printer_error(garbage: bytes) -> None:
    with pytest.raises(PrinterError) as caught:
        parse_host_status(garbage, "P")
    assert caught.value.code == "printer_garbled_status"
    assert "ZPL" in caught.value.message


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_printer_error(data: bytes) -> None:
    try:
        status = parse_host_status(data)
    except PrinterError:
        return
    assert isinstance(status, PrinterStatus)


_FIELD = st.one_of(st.text(alphabet="0123456789", max_size=12), st.text(max_size=6))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_FIELD, max_size=14), min_size=0, max_size=5), st.binary(max_size=8))
def test_fuzzed_host_status_shapes_raise_only_printer_error(lines: list[list[str]], tail: bytes) -> None:
    data = b"".join(b"\x02" + ",".join(f).encode("utf-8", "replace") + b"\x03\r\n" for f in lines) + tail
    try:
        status = parse_host_status(data)
    except PrinterError:
        return
    assert status.ready == (not status.faults)


def test_sgd_values() -> None:
    assert parse_sgd_value(b'"XXZJ221400123"') == "XXZJ221400123"
    assert parse_sgd_value(b'"?"') is None
    assert parse_sgd_value(b"") is None


# -- the driver over a real socket ----------------------------------------------------------


def test_labels_arrive_in_order_on_one_connection(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    labels = [LABEL.replace(b"0001", f"{n:04d}".encode()) for n in range(50)]
    for label in labels:
        printer.send(label)
    wait_for(lambda: len(zebra.labels()) == sum(map(len, labels)), what="all labels at the printer")
    assert zebra.labels() == b"".join(labels)
    assert zebra.connections == 1


def test_a_warm_connection_is_reused_for_every_label(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    # Speed lives in bench/pack_latency.py; here we check the behaviour that makes it fast:
    # one connection for many labels, no reconnect and no status round trip per send.
    label = LABEL * 20  # about a real 4x6 label's size
    for _ in range(300):
        printer.send(label)
    wait_for(lambda: len(zebra.labels()) == 300 * len(label), what="all labels at the printer")
    assert zebra.connections == 1


def test_send_nowait_never_connects_and_never_waits(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    assert isinstance(printer, InlineSender)
    assert printer.send_nowait(LABEL) is None  # not connected: the lane thread connects
    assert zebra.connections == 0
    printer.open()
    assert printer.send_nowait(LABEL) == len(LABEL)
    wait_for(lambda: zebra.labels() == LABEL, what="the label handed over without waiting")

    zebra.drop()  # the printer restarts: a closed connection is the lane thread's to reopen
    wait_for(lambda: printer.send_nowait(b"\r\n") is None, what="the closed connection to be seen")
    printer.send(LABEL)
    wait_for(lambda: zebra.labels().endswith(LABEL) and zebra.connections == 2, what="the reconnect")
    assert printer.connection_drops == 1


def test_a_label_the_socket_takes_in_part_is_finished_before_anything_else(
    printer: ZplPrinter, zebra: ZebraPeer
) -> None:
    printer.open()
    wait_for(lambda: zebra.connections == 1, what="the connection")
    big = b"^XA^FD" + b"y" * (32 << 20) + b"^FS^XZ"  # more than the socket buffers hold at once
    taken = printer.send_nowait(big)
    assert taken is not None
    assert 0 < taken < len(big)
    assert printer.send_nowait(LABEL) is None, "nothing may start before the rest of the big label"
    printer.finish_send()
    printer.send(LABEL)
    wait_for(lambda: len(zebra.labels()) == len(big) + len(LABEL), timeout_s=30, what="both labels")
    assert zebra.labels() == big + LABEL


def test_open_printer_picks_the_zpl_driver(zebra: ZebraPeer) -> None:
    driver = open_printer(config_for(zebra.port))
    try:
        assert isinstance(driver, ZplPrinter)
        driver.open()
        wait_for(lambda: zebra.connections == 1, what="the connection")
    finally:
        driver.close()


def test_status_reports_ready_then_paper_out(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    assert printer.status().ready
    zebra.status = host_status(paper_out=1, formats=1)
    status = printer.status()
    assert status.faults == {"paper_out"}
    assert status.message.startswith("printer ZD421-S1 is out of labels: load labels")


def test_status_and_labels_share_the_connection(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    printer.send(LABEL)
    assert printer.status().ready
    printer.send(LABEL)
    wait_for(lambda: zebra.labels().count(LABEL) == 2, what="both labels")
    assert zebra.connections == 1


def test_silent_printer_is_no_answer_after_its_timeout(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    zebra.silent = True
    status = printer.status()
    assert status.faults == {"no_answer"}
    assert not status.ready
    assert "ZD421-S1" in status.message
    assert "within 0.5 s" in status.message  # the fixture's status timeout, not a default
    # The printer speaks again: the next poll on the same connection sees it ready.
    zebra.silent = False
    assert printer.status().ready
    assert zebra.connections == 1


def test_a_late_answer_does_not_confuse_the_next_status(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    zebra.silent = True
    assert printer.status().faults == {"no_answer"}
    zebra.silent = False
    zebra.status = host_status(paused=1)
    assert printer.status().faults == {"paused"}  # the first reply is the one for this request
    zebra.status = host_status()
    assert printer.status().ready


def test_refused_connection_names_printer_address_and_what_to_check() -> None:
    port = closed_port()
    driver = ZplPrinter(config_for(port))
    with pytest.raises(PrinterError) as caught:
        driver.send(LABEL)
    assert caught.value.code == "printer_unreachable"
    assert "ZD421-S1" in caught.value.message
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "check" in caught.value.message
    status = driver.status()
    assert status.faults == {"offline"}
    assert f"127.0.0.1:{port}" in status.message


def test_unknown_host_is_unreachable() -> None:
    driver = ZplPrinter(
        PrinterConfig(id="P9", language="zpl", host="printer.invalid", port=9100), connect_timeout_s=1
    )
    with pytest.raises(PrinterError) as caught:
        driver.open()
    assert caught.value.code == "printer_unreachable"
    assert "host name" in caught.value.message


def test_a_printer_that_restarted_gets_the_next_label(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    printer.send(LABEL)
    wait_for(lambda: zebra.labels() == LABEL, what="the first label")
    zebra.drop()  # the printer closes the connection (restart, idle timeout)
    wait_for(lambda: not zebra._clients, what="the drop")
    second = LABEL.replace(b"0001", b"0002")
    printer.send(second)
    wait_for(lambda: zebra.labels() == LABEL + second, what="the second label after reconnecting")
    assert zebra.connections == 2


def test_printer_coming_back_after_being_down(zebra: ZebraPeer) -> None:
    port = closed_port()
    driver = ZplPrinter(config_for(port))
    with pytest.raises(PrinterError):
        driver.send(LABEL)
    driver.close()
    back = ZplPrinter(config_for(zebra.port))
    back.send(LABEL)
    wait_for(lambda: zebra.labels() == LABEL, what="the label")
    back.close()


def test_identify_prefers_the_unique_id(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    assert printer.identify() == "XXZJ221400123"


def test_identify_falls_back_to_the_mac(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    zebra.unique_id = None
    assert printer.identify() == "00:07:4d:aa:bb:cc"


def test_identify_falls_back_to_host_identification(printer: ZplPrinter, zebra: ZebraPeer) -> None:
    zebra.unique_id = None
    zebra.mac = "00:00:00:00:00:00"
    assert printer.identify().startswith("ZD421-203dpi/V84.20.18Z@")


def test_identify_a_silent_printer_is_an_error(zebra: ZebraPeer) -> None:
    zebra.silent = True
    driver = ZplPrinter(config_for(zebra.port), status_timeout_s=0.2)
    with pytest.raises(PrinterError) as caught:
        driver.identify()
    driver.close()
    assert caught.value.code == "printer_unidentified"


def test_file_connection_appends_labels(tmp_path) -> None:
    spool = tmp_path / "labels.zpl"
    driver = open_printer(
        PrinterConfig.from_dict({"id": "F1", "language": "zpl", "connection": "file", "device": str(spool)})
    )
    driver.send(LABEL)
    driver.send(LABEL)
    driver.close()
    assert spool.read_bytes() == LABEL * 2
    assert driver.status().ready
    assert driver.identify() == f"file:{spool}"


def test_file_connection_to_a_missing_folder_is_unreachable(tmp_path) -> None:
    driver = open_printer(
        PrinterConfig(id="F2", language="zpl", connection="file", device=str(tmp_path / "no" / "x.zpl"))
    )
    with pytest.raises(PrinterError) as caught:
        driver.send(LABEL)
    assert caught.value.code == "printer_unreachable"


# -- one status check (the doctor's probe) and the state a station shows ----------------------


def test_status_once_asks_a_printer_no_lane_holds_and_lets_it_go(zebra: ZebraPeer) -> None:
    ready = status_once(config_for(zebra.port))
    assert (ready.ready, ready.state) == (True, "ready")
    zebra.status = host_status(paper_out=1)
    out = status_once(config_for(zebra.port))
    assert (out.faults, out.state) == ({"paper_out"}, "fault")
    assert zebra.connections == 2  # a connection per check, each closed after its answer
    with pytest.raises(PrinterError):
        status_once(config_for(closed_port()))


@pytest.mark.parametrize(
    ("faults", "state"),
    [((), "ready"), (("paper_out",), "fault"), (("no_answer",), "fault"), (("offline", "paused"), "offline")],
)
def test_a_printer_status_names_its_state(faults: tuple[str, ...], state: str) -> None:
    assert status_of("P", faults).state == state
