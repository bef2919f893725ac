"""Every printer fault, over real sockets, and the control API's answers to bad requests."""

from __future__ import annotations

import socket

import pytest

from tests.hardware_mocks.mock_peers import fields_of, label, wait_until


@pytest.mark.parametrize(
    ("fault", "line", "position"),
    [("paper_out", 0, 1), ("paused", 0, 2), ("head_open", 1, 2), ("ribbon_out", 1, 3)],
)
def test_holding_faults_buffer_labels_and_print_them_in_order_when_cleared(
    printer, printer_control, connect, fault, line, position
):
    host = connect(printer.port)
    host.send(label("before"))
    printer.wait_for_labels(1)
    assert printer_control.post("/fault", json={"fault": fault}).status_code == 200
    host.send(label("held 1") + label("held 2"))
    status = host.host_status()
    assert status[line][position] == "1"
    assert status[0][4] == "002"  # formats waiting in the receive buffer
    assert len(printer.labels()) == 1
    assert printer_control.get("/status").json()["formats_waiting"] == 2
    printer_control.post("/fault", json={"fault": "none"})
    labels = printer.wait_for_labels(3)
    assert fields_of(labels) == [["before"], ["held 1"], ["held 2"]]
    status = host.host_status()
    assert status[line][position] == "0"
    assert status[0][4] == "000"


def test_paused_printer_resumes_on_host_resume_command(printer, connect):
    host = connect(printer.port)
    host.send(b"~PP" + label("waits"))
    assert host.host_status()[0][2] == "1"
    assert printer.labels() == []
    host.send(b"~PS")
    assert fields_of(printer.wait_for_labels(1)) == [["waits"]]
    assert printer.fault == "none"


def test_cancel_all_drops_waiting_formats(printer, connect):
    printer.set_fault("paper_out")
    host = connect(printer.port)
    host.send(label("a") + label("b") + b"~JA")
    assert host.host_status()[0][4] == "000"
    printer.set_fault("none")
    host.send(label("c"))
    assert fields_of(printer.wait_for_labels(1)) == [["c"]]
    assert printer.status()["cancelled_formats"] == 2


def test_buffer_full_answers_status_and_applies_tcp_backpressure(printer, printer_control, connect):
    printer_control.post("/fault", json={"fault": "buffer_full"})
    querying = connect(printer.port)
    assert querying.host_status()[0][5] == "1"
    sender = socket.create_connection(("127.0.0.1", printer.port))
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sender.setblocking(False)
    chunk = label("x" * 1000) * 50
    sent = 0
    blocked = False
    try:
        while sent < 256 * 1024 * 1024:
            try:
                sent += sender.send(chunk)
            except BlockingIOError:
                blocked = True
                break
        assert blocked, "the printer kept reading while its buffer was full"
        assert printer.labels() == []
        assert printer_control.get("/status").json()["buffer_full"] is True
        printer_control.post("/fault", json={"fault": "none"})
        wait_until(lambda: len(printer.labels()) > 0, what="labels after buffer_full cleared")
        assert querying.host_status()[0][5] == "0"
    finally:
        sender.close()


def test_offline_refuses_connections_and_closes_open_ones(printer, printer_control, connect):
    host = connect(printer.port)
    host.send(label("online"))
    printer.wait_for_labels(1)
    printer_control.post("/fault", json={"fault": "offline"})
    assert host.sock.recv(10) == b""  # the open connection was closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", printer.port), timeout=2).close()
    assert printer_control.get("/status").json()["online"] is False
    printer_control.post("/fault", json={"fault": "none"})
    again = connect(printer.port)
    again.send(label("back"))
    assert fields_of(printer.wait_for_labels(2)) == [["online"], ["back"]]


def test_silent_prints_but_never_answers_status(printer, printer_control, connect):
    printer_control.post("/fault", json={"fault": "silent"})
    host = connect(printer.port)
    host.send(b'~HS~HI! U1 getvar "device.unique_id"\r\n' + label("printed anyway"))
    printer.wait_for_labels(1)
    host.sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        host.sock.recv(100)
    host.sock.settimeout(5)
    printer_control.post("/fault", json={"fault": "none"})
    assert host.host_status()[0][1] == "0"


def test_slow_holds_each_label_until_its_delay_passed_then_prints_in_order(printer, printer_control, connect):
    # A delay far longer than the test: while it runs, nothing may print.
    response = printer_control.post("/fault", json={"fault": "slow", "delay_s": 60})
    assert response.json()["slow_delay_s"] == 60
    host = connect(printer.port)
    host.send(label("1"))
    assert host.host_status()[0][4] == "001"  # received and waiting in the buffer
    assert printer.labels() == []
    printer_control.post("/fault", json={"fault": "slow", "delay_s": 0.05})
    assert fields_of(printer.wait_for_labels(1, timeout_s=5)) == [["1"]]

    # Two more labels: the second is not printed at once after the first; both wait their delay.
    printer_control.post("/fault", json={"fault": "slow", "delay_s": 60})
    host.send(label("2") + label("3"))
    assert host.host_status()[0][4] == "002"
    assert fields_of(printer.labels()) == [["1"]]
    printer_control.post("/fault", json={"fault": "slow", "delay_s": 0.05})
    labels = printer.wait_for_labels(3, timeout_s=5)
    assert fields_of(labels) == [["1"], ["2"], ["3"]]
    gaps = [b["received_ts"] for b in labels]
    assert gaps == sorted(gaps)
    assert host.host_status()[0][4] == "000"


def test_drop_cuts_the_next_label_and_records_it_unprinted(printer, printer_control, connect):
    printer_control.post("/fault", json={"fault": "drop"})
    host = connect(printer.port)
    host.send(label("never printed"))
    with pytest.raises(ConnectionError):
        read_until_closed(host.sock)
    status = printer_control.get("/status").json()
    assert status["fault"] == "none"
    assert status["last_drop"]["label_printed"] is False
    assert status["last_drop"]["connection"] == 1
    assert printer.labels() == []
    again = connect(printer.port)
    again.send(label("after the drop"))
    assert fields_of(printer.wait_for_labels(1)) == [["after the drop"]]


def read_until_closed(sock: socket.socket) -> None:
    """Read until the peer closes (ConnectionError either way: reset, or a clean close)."""
    while sock.recv(100):
        pass
    raise ConnectionError("closed")


def test_labels_api_since_delete_and_indexes_keep_counting(printer, printer_control, connect):
    host = connect(printer.port)
    host.send(label("a") + label("b"))
    printer.wait_for_labels(2)
    entries = printer_control.get("/labels").json()
    assert [entry["index"] for entry in entries] == [1, 2]
    assert set(entries[0]) >= {"index", "received_at", "data", "fields", "connection"}
    assert [entry["index"] for entry in printer_control.get("/labels", params={"since": 1}).json()] == [2]
    assert printer_control.delete("/labels").json() == {"cleared": 2}
    assert printer_control.get("/labels").json() == []
    host.send(label("c"))
    wait_until(lambda: printer.labels(), what="label after delete")
    assert printer_control.get("/labels").json()[0]["index"] == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"fault": "on_fire"}', "unknown_fault"),
        (b'{"fault": 3}', "unknown_fault"),
        (b"{}", "unknown_fault"),
        (b'{"fault": "slow", "delay_s": "fast"}', "invalid_delay"),
        (b'{"fault": "slow", "delay_s": -1}', "invalid_delay"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_fault_api_rejects_bad_requests_with_contract_errors(printer, printer_control, body, code):
    response = printer_control.post("/fault", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert printer.fault == "none"


def test_control_api_unknown_paths_methods_and_oversized_bodies(printer_control):
    missing = printer_control.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = printer_control.put("/fault", json={"fault": "none"})
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    huge = printer_control.post("/fault", content=b"{" + b" " * 200_000 + b"}")
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "body_too_large"
    bad_since = printer_control.get("/labels", params={"since": "yesterday"})
    assert bad_since.status_code == 400
    assert bad_since.json()["error"]["code"] == "invalid_request"


def test_status_counts(printer, printer_control, connect):
    host = connect(printer.port)
    host.send(label("x"))
    printer.wait_for_labels(1)
    status = printer_control.get("/status").json()
    assert status["labels_printed"] == 1
    assert status["connections_open"] == 1
    assert status["serial"] == "ZTEST0001"
    assert status["fault"] == "none"
    assert printer_control.get("/").json()["port"] == printer.port
