"""The ESC/POS printer mock with python-escpos as the real client: receipts, cuts and DLE EOT status."""

from __future__ import annotations

import pytest
from escpos.printer import Dummy, Network

from hardware_mocks import escpos
from hardware_mocks.printer_events import JobComplete, PrinterQuery


def packing_slip(order_ref: str) -> bytes:
    printer = Dummy()
    printer.set(align="center", bold=True)
    printer.text(f"Packing slip {order_ref}\n")
    printer.set()
    printer.text("2 x SKU-RED-MUG\n")
    printer.barcode("123456789012", "EAN13")
    printer.qr(f"https://track.example/{order_ref}", native=True)
    printer.cut()
    return bytes(printer.output)


@pytest.fixture
def network_client(escpos_printer):
    client = Network("127.0.0.1", port=escpos_printer.port, timeout=5)
    client.open()
    yield client
    client.close()


def test_receipts_end_at_the_cut_and_keep_their_text(escpos_printer, network_client):
    network_client._raw(packing_slip("DEMO-1") + packing_slip("DEMO-2"))
    receipts = escpos_printer.wait_for_labels(2)
    assert receipts[0]["fields"] == [
        "Packing slip DEMO-1",
        "2 x SKU-RED-MUG",
        "123456789012",
        "https://track.example/DEMO-1",
    ]
    assert receipts[1]["fields"][0] == "Packing slip DEMO-2"


def test_real_time_status_through_python_escpos(escpos_printer, network_client):
    assert network_client.is_online() is True
    assert network_client.paper_status() == 2
    escpos_printer.set_fault("paper_out")
    assert network_client.is_online() is False
    assert network_client.paper_status() == 0
    escpos_printer.set_fault("head_open")
    network_client._raw(b"\x10\x04\x02")
    assert network_client._read()[0] & 0x04  # cover open
    escpos_printer.set_fault("none")
    assert network_client.is_online() is True


def test_faults_hold_receipts_until_cleared(escpos_printer, network_client):
    escpos_printer.set_fault("paused")
    network_client._raw(packing_slip("HELD"))
    network_client._raw(b"\x10\x04\x01")
    assert network_client._read() == bytes([0x12 | 0x08])
    assert escpos_printer.labels() == []
    escpos_printer.set_fault("none")
    assert escpos_printer.wait_for_labels(1)[0]["fields"][0] == "Packing slip HELD"


def test_status_request_in_the_middle_of_a_receipt_is_answered_at_once(escpos_printer, network_client):
    slip = packing_slip("MID")
    network_client._raw(slip[:20] + b"\x10\x04\x04")
    assert network_client._read() == bytes([0x12])
    assert escpos_printer.labels() == []
    network_client._raw(slip[20:])
    receipt = escpos_printer.wait_for_labels(1)[0]
    assert receipt["fields"][0] == "Packing slip MID"
    assert receipt["bytes"] == len(slip)


def test_payload_bytes_that_look_like_a_cut_do_not_end_the_receipt():
    # A raster image whose data contains GS V 0 and DLE EOT 1 must be skipped, not obeyed.
    image = b"\x1dv0\x00\x04\x00\x02\x00" + b"\x1dV\x00\x10\x04\x01\xff\xff"
    stream = escpos.EscposStream()
    stream.feed(b"\x1b@before\n" + image + b"after\n\x1dVA\x03")
    events = []
    while (event := stream.next_event()) is not None:
        events.append(event)
    jobs = [event for event in events if isinstance(event, JobComplete)]
    assert len(jobs) == 1
    assert not [event for event in events if isinstance(event, PrinterQuery)]
    assert escpos.printed_lines(jobs[0].raw) == ["before", "after"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (escpos.EscposCondition(), [0x12, 0x12, 0x12, 0x12]),
        (escpos.EscposCondition(paper_end=True), [0x1A, 0x32, 0x12, 0x7E]),
        (escpos.EscposCondition(cover_open=True), [0x1A, 0x16, 0x12, 0x12]),
        (escpos.EscposCondition(error=True), [0x1A, 0x52, 0x52, 0x12]),
    ],
)
def test_status_bytes_follow_the_epson_layout(condition, expected):
    assert [escpos.realtime_status(n, condition)[0] for n in (1, 2, 3, 4)] == expected
