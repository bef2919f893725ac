"""The ZPL printer mock over real TCP: framing, status replies, SGD, field decoding, many connections."""

from __future__ import annotations

import threading

import pytest

from hardware_mocks import zpl
from hardware_mocks.printer_events import Blocked, JobComplete, JobStarted, PrinterQuery
from tests.hardware_mocks.mock_peers import ETX, STX, fields_of, label, wait_until


def test_label_split_into_single_bytes_is_one_label(printer, connect):
    raw = label("split across reads")
    host = connect(printer.port)
    for byte in raw:
        host.send(bytes([byte]))
    labels = printer.wait_for_labels(1)
    assert len(labels) == 1
    assert labels[0]["data"] == raw.decode()
    assert labels[0]["fields"] == ["split across reads"]


def test_many_labels_in_one_send_and_over_time_on_one_connection(printer, connect):
    host = connect(printer.port)
    host.send(b"".join(label(f"parcel {n}") for n in range(50)))
    printer.wait_for_labels(50)
    for n in range(50, 60):
        host.send(label(f"parcel {n}"))
    labels = printer.wait_for_labels(60)
    assert fields_of(labels) == [[f"parcel {n}"] for n in range(60)]
    assert [entry["index"] for entry in labels] == list(range(1, 61))
    assert {entry["connection"] for entry in labels} == {1}


def test_host_status_has_the_real_three_line_layout(printer, connect):
    host = connect(printer.port)
    host.send(b"~HS")
    reply = host.read_until(ETX + b"\r\n", 3)
    lines = reply.split(b"\r\n")[:-1]
    assert all(line.startswith(STX) and line.endswith(ETX) for line in lines)
    first, second, third = (line[1:-1].decode().split(",") for line in lines)
    assert (len(first), len(second), len(third)) == (12, 11, 2)
    assert [len(value) for value in first] == [3, 1, 1, 4, 3, 1, 1, 1, 3, 1, 1, 1]
    assert [len(value) for value in second] == [3, 1, 1, 1, 1, 1, 1, 1, 8, 1, 3]
    # idle printer: no paper out, no pause, nothing buffered, head closed, ribbon in
    assert (first[1], first[2], first[4], first[5], first[7]) == ("0", "0", "000", "0", "0")
    assert (second[2], second[3], second[9]) == ("0", "0", "1")


def test_host_status_between_labels_on_the_same_connection(printer, connect):
    host = connect(printer.port)
    host.send(label("one") + b"~HS")
    first = host.read_status()
    host.send(label("two") + b"~HS" + label("three"))
    second = host.read_status()
    assert (first[0][4], second[0][4]) == ("000", "000")
    assert fields_of(printer.wait_for_labels(3)) == [["one"], ["two"], ["three"]]


def test_host_status_inside_a_format_is_answered_and_not_printed(printer, connect):
    host = connect(printer.port)
    host.send(b"^XA^FO10,10^FDinside")
    host.send(b"~HS")
    status = host.read_status()
    assert status[0][7] == "1"  # partial format in progress
    host.send(b"^FS^XZ")
    labels = printer.wait_for_labels(1)
    assert labels[0]["data"] == "^XA^FO10,10^FDinside^FS^XZ"
    assert host.host_status()[0][7] == "0"


def test_host_identification(printer, connect):
    host = connect(printer.port)
    host.send(b"~HI")
    reply = host.read_until(ETX + b"\r\n")
    assert reply.startswith(STX)
    model, firmware, dots_per_mm, memory = reply[1:-3].decode().split(",")
    assert model == "ZD421-203dpi"
    assert firmware.startswith("V")
    assert dots_per_mm == "8"
    assert memory.endswith("KB")


def test_sgd_getvar_answers_quoted_values_like_a_zebra(printer, connect):
    host = connect(printer.port)
    host.send(b'! U1 getvar "device.unique_id"\r\n')
    assert host.read_exactly(len(b'"ZTEST0001"')) == b'"ZTEST0001"'
    host.send(b'! U1 getvar "device.product_name"\r\n')
    assert host.read_exactly(len(b'"ZD421"')) == b'"ZD421"'
    host.send(b'! U1 getvar "no.such.setting"\r\n')
    assert host.read_exactly(3) == b'"?"'
    host.send(b'! U1 setvar "device.friendly_name" "DOCK-3"\r\n! U1 getvar "device.friendly_name"\r\n')
    assert host.read_exactly(len(b'"DOCK-3"')) == b'"DOCK-3"'


def test_sgd_split_across_reads_and_between_labels(printer, connect):
    host = connect(printer.port)
    host.send(label("a") + b'! U1 getvar "device.uni')
    host.send(b'que_id"\r\n' + label("b"))
    assert host.read_exactly(len(b'"ZTEST0001"')) == b'"ZTEST0001"'
    assert fields_of(printer.wait_for_labels(2)) == [["a"], ["b"]]


def test_field_hex_escapes_and_code_pages_are_decoded():
    raw = (
        b"^XA^CI28^FO1,1^FH^FD_C3_A9t_C3_A9 _5E _7E _5F^FS"
        b"^FO1,1^FD_41 stays^FS"
        b"^FO1,1^FH\\^FD\\41\\42_43^FS"
        b"^FO1,1^FDline\r\nbreak^FS^XZ"
    )
    assert zpl.decode_fields(raw) == ["été ^ ~ _", "_41 stays", "AB_43", "linebreak"]
    assert zpl.decode_fields(b"^XA^FO1,1^FH^FD_82^FS^XZ") == ["é"]  # ^CI0 default: code page 850
    assert zpl.decode_fields(b"^XA^CI27^FH^FD_80^FS^XZ") == ["€"]
    assert zpl.decode_fields(b"^XA^CI28^FD\xff^FS^XZ") == ["\ufffd"]


def test_data_is_utf8_with_replacement_and_stored_files_are_exact(printer, connect):
    raw = b"^XA^CI28^FD\xe2\x82\xac and \xff^FS^XZ"
    host = connect(printer.port)
    host.send(raw + label("second"))
    labels = printer.wait_for_labels(2)
    assert labels[0]["data"] == "^XA^CI28^FD€ and \ufffd^FS^XZ"
    assert labels[0]["fields"] == ["€ and \ufffd"]
    assert printer.flush_store()
    assert (printer.store / "0001.zpl").read_bytes() == raw
    assert (printer.store / "0002.zpl").read_bytes() == label("second")


def test_garbage_between_formats_is_ignored(printer, connect):
    host = connect(printer.port)
    host.send(b"\x00\xffhello\r\n^XZ^FDstray^FS" + label("real") + b"!!! not sgd\r\n~ZZ" + label("next"))
    assert fields_of(printer.wait_for_labels(2)) == [["real"], ["next"]]
    host.send(b"~HS")
    assert host.read_status()[0][4] == "000"


def test_many_concurrent_connections_each_keep_their_order(printer, connect):
    per_connection, connections = 40, 8
    errors: list[BaseException] = []

    def send_labels(worker: int) -> None:
        try:
            host = connect(printer.port)
            for n in range(per_connection):
                host.send(label(f"w{worker}-{n}"))
            host.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send_labels, args=(worker,)) for worker in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    labels = printer.wait_for_labels(per_connection * connections)
    by_connection: dict[int, list[str]] = {}
    for entry in labels:
        by_connection.setdefault(entry["connection"], []).append(entry["fields"][0])
    assert len(by_connection) == connections
    for texts in by_connection.values():
        worker = texts[0].split("-")[0]
        assert texts == [f"{worker}-{n}" for n in range(per_connection)]


def test_partial_label_at_disconnect_is_not_printed(printer, connect):
    host = connect(printer.port)
    host.send(label("whole") + b"^XA^FDhalf")
    printer.wait_for_labels(1)
    host.close()
    wait_until(lambda: printer.status()["discarded_partial_formats"] == 1, what="partial format discarded")
    assert len(printer.labels()) == 1


def test_stream_parser_stops_before_a_format_when_jobs_are_refused():
    stream = zpl.ZplStream()
    stream.feed(b"~HS^XA^FDx^FS^XZ")
    assert stream.next_event(jobs_allowed=False) == PrinterQuery("host_status")
    assert stream.next_event(jobs_allowed=False) == Blocked()
    assert stream.next_event() == JobStarted()
    assert stream.next_event() == JobComplete(b"^XA^FDx^FS^XZ")
    assert stream.next_event() is None


def test_oversized_format_is_dropped_not_kept(monkeypatch):
    monkeypatch.setattr(zpl, "MAX_FORMAT_BYTES", 1000)
    stream = zpl.ZplStream()
    stream.feed(b"^XA" + b"x" * 5000)
    assert stream.next_event() == JobStarted()
    assert stream.next_event() is None
    assert stream.oversized_formats == 1
    assert not stream.in_format
    stream.feed(b"^XZ^XA^FDok^FS^XZ")
    assert stream.next_event() == JobStarted()
    assert stream.next_event() == JobComplete(b"^XA^FDok^FS^XZ")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_stream_parser_framing_is_independent_of_read_size(chunk):
    data = b"junk" + label("a") + b"~HS" + label("b") + b'! U1 getvar "device.unique_id"\r\n' + label("c")
    stream = zpl.ZplStream()
    events = []
    for start in range(0, len(data), chunk):
        stream.feed(data[start : start + chunk])
        while (event := stream.next_event()) is not None:
            events.append(event)
    jobs = [event.raw for event in events if isinstance(event, JobComplete)]
    assert jobs == [label("a"), label("b"), label("c")]
    queries = [event for event in events if isinstance(event, PrinterQuery)]
    assert queries == [PrinterQuery("host_status"), PrinterQuery("sgd_getvar", "device.unique_id")]


def test_thousands_of_labels_on_one_connection_are_complete(printer, connect):
    # Throughput is measured by bench/batch_print.py; here every label must arrive, in order.
    body = label("4x6 shipping label " + "x" * 1500)
    host = connect(printer.port)
    host.send(body * 3000)
    labels = printer.wait_for_labels(3000, timeout_s=30)
    assert len(labels) == 3000
    assert [entry["index"] for entry in labels] == list(range(1, 3001))
