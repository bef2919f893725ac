"""The mock printer's confirm modes (`POST /confirm`): at once, after a delay in its buffer, or a
paper-out fault right after it took the label in; and the control API's refusals."""

from __future__ import annotations

import time

import pytest

from tests.hardware_mocks.mock_peers import fields_of, label, wait_until


def test_at_once_is_the_default_and_host_status_shows_nothing_waiting(printer, printer_control, connect):
    host = connect(printer.port)
    host.send(label("now"))
    status = host.host_status()
    assert status[0][4] == "000"
    assert fields_of(printer.labels()) == [["now"]]
    assert printer_control.get("/status").json()["confirm_mode"] == "at_once"


def test_delay_keeps_each_label_in_the_buffer_then_prints_in_order(printer, printer_control, connect):
    answer = printer_control.post("/confirm", json={"mode": "delay", "delay_s": 2})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["confirm_mode"], answer.json()["confirm_delay_s"]) == ("delay", 2)
    host = connect(printer.port)
    host.send(label("one") + label("two"))
    status = host.host_status()
    assert status[0][4] == "002"  # both wait in the receive buffer
    assert status[0][1] == "0"  # and no fault: the printer is fine
    assert printer.labels() == []
    labels = printer.wait_for_labels(2, timeout_s=5)
    assert fields_of(labels) == [["one"], ["two"]]
    assert host.host_status()[0][4] == "000"


def test_fault_after_accept_takes_the_label_in_then_runs_out_of_paper_once(printer, printer_control, connect):
    printer_control.post("/confirm", json={"mode": "fault_after_accept"})
    host = connect(printer.port)
    host.send(label("caught"))
    wait_until(lambda: printer.fault == "paper_out", what="the paper to run out")
    status = host.host_status()
    assert status[0][1] == "1"  # paper out
    assert status[0][4] == "001"  # with the label waiting
    assert printer.labels() == []
    assert printer_control.get("/status").json()["confirm_mode"] == "at_once"  # once only
    printer_control.post("/fault", json={"fault": "none"})
    printer.wait_for_labels(1)
    host.send(label("after"))
    labels = printer.wait_for_labels(2)
    assert fields_of(labels) == [["caught"], ["after"]]
    time.sleep(0.05)
    assert printer.fault == "none"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'{"mode": "eventually"}', "unknown_confirm_mode"),
        (b'{"mode": 7}', "unknown_confirm_mode"),
        (b"{}", "unknown_confirm_mode"),
        (b'{"mode": "delay", "delay_s": "soon"}', "invalid_delay"),
        (b'{"mode": "delay", "delay_s": 0}', "invalid_delay"),
        (b'{"mode": "delay", "delay_s": 601}', "invalid_delay"),
        (b'{"mode": "delay", "delay_s": true}', "invalid_delay"),
        (b'{"mode": "' + b"x" * 5000 + b'"}', "unknown_confirm_mode"),
    ],
)
def test_confirm_api_rejects_bad_requests_with_contract_errors(printer, printer_control, body, code):
    response = printer_control.post("/confirm", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) < 300
    assert printer_control.get("/status").json()["confirm_mode"] == "at_once"
