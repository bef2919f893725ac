"""Reading a packer's scan: plain references, scanner prefix and suffix, GS1 codes, hostile input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockside.errors import InputError
from dockside.scanning import GS, MAX_SCAN_CHARS, ScanReader, ScanUnreadable

READER = ScanReader()
# A GS1 example SSCC and GTIN with valid check digits.
SSCC = "106141411234567897"
GTIN = "09506000134352"


def _refusal(scan: str, reader: ScanReader = READER) -> str:
    with pytest.raises(ScanUnreadable) as caught:
        reader.order_ref(scan)
    assert caught.value.code == "scan_unreadable"
    assert caught.value.http_status == 422
    assert isinstance(caught.value, InputError)
    assert ":" in caught.value.message, "the message says what to do after the colon"
    return caught.value.message


@pytest.mark.parametrize("scan", ["DEMO-0001", "PO.7781_a", "4001234", "0" * 64])
def test_a_plain_reference_is_kept(scan: str) -> None:
    assert READER.order_ref(scan) == scan


@pytest.mark.parametrize("scan", [" DEMO-0001\r\n", "\tDEMO-0001\t", "\u3000DEMO-0001\u00a0"])
def test_whitespace_around_a_scan_is_trimmed(scan: str) -> None:
    assert READER.order_ref(scan) == "DEMO-0001"


def test_the_configured_prefix_and_suffix_come_off_only_when_present() -> None:
    reader = ScanReader(prefix="\x02*", suffix="#\x03")

    assert reader.order_ref("\x02*DEMO-0001#\x03") == "DEMO-0001"
    assert reader.order_ref("\x02*DEMO-0001") == "DEMO-0001"
    assert reader.order_ref("DEMO-0001#\x03\r\n") == "DEMO-0001"
    assert reader.order_ref("DEMO-0001") == "DEMO-0001"
    # A control character the settings do not account for is refused, named by its code point.
    assert "U+0002" in _refusal("\x02DEMO-0001", reader)


def test_a_prefix_before_a_gs1_code_comes_off_first() -> None:
    reader = ScanReader(prefix="SCAN:")
    assert reader.order_ref(f"SCAN:]C1400PO-7781{GS}10LOT7") == "PO-7781"


@pytest.mark.parametrize("identifier", ["]C1", "]d2", "]Q3", "]e0", "]J1"])
def test_a_gs1_code_with_its_symbology_identifier(identifier: str) -> None:
    assert READER.order_ref(f"{identifier}400PO-7781") == "PO-7781"
    assert READER.order_ref(f"{identifier}00{SSCC}400PO-7781") == "PO-7781"


def test_a_variable_length_ai_ends_at_gs_and_another_ai_follows() -> None:
    assert READER.order_ref(f"]C1400PO-7781{GS}10LOT7") == "PO-7781"
    assert READER.order_ref(f"]C110LOT7{GS}400PO-7781{GS}21SERIAL9") == "PO-7781"


def test_gs_alone_marks_a_gs1_code_without_an_identifier() -> None:
    # A leading GS is FNC1 in first position, as some scanners type it.
    assert READER.order_ref(f"{GS}400PO-7781{GS}10LOT7") == "PO-7781"
    assert READER.order_ref(f"10LOT7{GS}400PO-7781") == "PO-7781"


def test_the_bracketed_human_readable_form() -> None:
    assert READER.order_ref("(400)ORDER-1(10)LOT") == "ORDER-1"
    assert READER.order_ref(f"(00){SSCC}(400)ORDER-1") == "ORDER-1"
    assert READER.order_ref("]C1(400)ORDER-1") == "ORDER-1"


def test_a_real_gs1_logistics_label() -> None:
    """An SSCC carton label with the GTIN, count and the customer's purchase order number."""
    scan = f"]C100{SSCC}02{GTIN}3712{GS}400PO-2026-0042{GS}"
    assert READER.order_ref(scan) == "PO-2026-0042"
    assert READER.order_ref(f"(00){SSCC}(02){GTIN}(37)12(400)PO-2026-0042") == "PO-2026-0042"


def test_the_configured_ais_in_order_of_preference() -> None:
    scan = f"]C1401GINC-1{GS}400PO-7781"
    assert READER.order_ref(scan) == "PO-7781"
    assert ScanReader(order_ais=("401", "400")).order_ref(scan) == "GINC-1"
    assert ScanReader(order_ais=("10",)).order_ref(f"]C110LOT7{GS}400PO-7781") == "LOT7"


def test_fields_whose_format_stdnum_cannot_size_are_read_by_length() -> None:
    assert READER.order_ref(f"]C14330012345-{GS}8030{'A' * 90}{GS}400PO-7781") == "PO-7781"


def test_a_plain_code_128_identifier_is_taken_off() -> None:
    assert READER.order_ref("]C0DEMO-0001") == "DEMO-0001"


def test_a_gs1_code_without_an_order_ai_names_the_ais_it_has() -> None:
    message = _refusal(f"]C100{SSCC}10LOT7")

    assert "(00), (10)" in message
    assert "400" in message
    assert "401" in message
    assert "[scanner] order_ais" in message


@pytest.mark.parametrize(
    ("scan", "said"),
    [
        ("(40", "brackets"),
        ("(400", "brackets"),
        ("(400)PO-1(10", "brackets"),
        ("(4000000)PO-1", "brackets"),
        ("(40)PO-1", "(40) is not a known application identifier"),
        ("]C1400", "AI (400) has no value"),
        (f"]C1400{GS}10LOT7", "AI (400) has no value"),
        ("]C1ABC", "no known application identifier starts at character 1"),
        (f"]C110LOT{GS}X400PO-1", "character 7"),
        (f"]C100{SSCC[:10]}", "exactly 18 digits"),
        (f"]C100{SSCC[:17]}X400PO-1", "exactly 18 digits"),
        ("]C101" + GTIN[:-1] + "0", "format allows"),  # a wrong GTIN check digit
        ("]C1400" + "A" * 31, "longer than its 30 characters"),
        ("]C1400" + "400" * 30, "longer than its 30 characters"),
        ("]C117261399", "format allows"),  # not a date
        ("]C14330" + "1" * 8, "longer than its 7 characters"),  # a format stdnum cannot size
        ("]C1", "holds no field"),
        (f"]C1{GS}{GS}", "holds no field"),
        (f"]C1400PO-1{GS}400PO-2", "twice"),
    ],
)
def test_a_malformed_gs1_code_is_refused_saying_what_is_wrong(scan: str, said: str) -> None:
    assert said in _refusal(scan)


@pytest.mark.parametrize(
    "scan",
    [
        "",
        "   ",
        GS,
        GS * 50,
        "\x00",
        "DEMO\x000001",
        "DEMO-0001\x7f",
        "DEMO-\x850001",
        "DEMO 0001",
        "../../etc/passwd",
        "DEMO-0001^XZ^XA",
        "\uff34-0001",
        "T" * 65,
        "]C1400PO 1",
        "(400)PO\u00e9",
    ],
)
def test_garbage_is_refused_without_echoing_it(scan: str) -> None:
    message = _refusal(scan)
    assert len(message) < 300
    if len(scan.strip()) > 3:
        assert scan.strip() not in message


def test_an_over_long_scan_is_refused_before_any_work() -> None:
    hostile = [
        "D" * (MAX_SCAN_CHARS + 1),
        "(400)" * 20_000,
        "]C1" + "400" * 40_000,
        GS * 100_000,
        "\x00" * 100_000,
        " " * 100_000 + "DEMO-0001",
    ]
    started = time.perf_counter()
    for scan in hostile:
        assert "more than the 128" in _refusal(scan)
    assert time.perf_counter() - started < 0.05
    # At the limit the scan is read, and may well be an order reference after trimming.
    assert READER.order_ref("DEMO-0001".center(MAX_SCAN_CHARS)) == "DEMO-0001"


@pytest.mark.parametrize(
    ("settings_", "said"),
    [
        ({"prefix": "X" * 17}, "longer than 16"),
        ({"suffix": GS}, "GS character"),
        ({"order_ais": ()}, "at least one"),
        ({"order_ais": ("40",)}, "not a GS1 application identifier"),
        ({"order_ais": ("4000",)}, "not a GS1 application identifier"),
        ({"order_ais": ("PO",)}, "not a GS1 application identifier"),
        ({"order_ais": ("400", "400")}, "twice"),
    ],
)
def test_bad_settings_are_refused(settings_: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        ScanReader(**settings_)  # type: ignore[arg-type]


def test_whitespace_around_a_setting_is_dropped() -> None:
    reader = ScanReader(prefix=" * ", suffix="\r\n")
    assert (reader.prefix, reader.suffix) == ("*", "")


_SCAN_PARTS = st.sampled_from(
    ["]C1", "]d2", "(", ")", GS, "400", "401", "00", "10", "01", "17", SSCC, "PO-1"]
)
_SCANS = st.lists(_SCAN_PARTS | st.text(max_size=12), max_size=12).map("".join) | st.text(max_size=300)


@settings(max_examples=600, deadline=None)
@given(scan=_SCANS, prefix=st.sampled_from(["", "*", "]C1"]))
def test_any_input_is_an_order_reference_or_the_scan_error_and_fast(scan: str, prefix: str) -> None:
    reader = ScanReader(prefix=prefix)
    reader.order_ref(f"]C101{GTIN}400PO-1")  # stdnum loads its GTIN check on first use
    started = time.perf_counter()
    try:
        ref: str | None = reader.order_ref(scan)
    except ScanUnreadable:
        ref = None
    if ref is not None:
        assert 1 <= len(ref) <= 64
        assert ref.isascii()
        assert ref[0].isalnum()
    # Microseconds in fact: the bound leaves room for a busy CI machine, not for quadratic work.
    assert time.perf_counter() - started < 0.05
