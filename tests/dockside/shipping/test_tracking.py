"""Tracking-number formats: serial to number and back, checked against published carrier numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dockside.errors import InputError
from dockside.shipping.check_digits import CheckScheme, is_valid
from dockside.shipping.tracking import (
    MAX_RANGE_SIZE,
    NumberFormat,
    format_number,
    parse_number,
    validate_range,
)

S10_US = NumberFormat(scheme=CheckScheme.MOD11, prefix="RR", digits=8, suffix="US")
UPS = NumberFormat(scheme=CheckScheme.UPS_1Z, prefix="1Z999AA101", digits=7)
DHL = NumberFormat(scheme=CheckScheme.MOD7, digits=9)
GS1 = NumberFormat(scheme=CheckScheme.GS1_MOD10, prefix="0061414", digits=10)
PLAIN = NumberFormat(prefix="DS", digits=6)


@pytest.mark.parametrize(
    ("fmt", "serial", "published"),
    [
        # RB123456785GB (jkeen/tracking_number_data s10.json), as an S10 of service RB from GB
        (
            NumberFormat(scheme=CheckScheme.MOD11, prefix="RB", digits=8, suffix="GB"),
            12345678,
            "RB123456785GB",
        ),
        # UPS developer-kit sample: shipper 999AA1, service 01, package 2345678, check 4
        (UPS, 2345678, "1Z999AA10123456784"),
        (
            NumberFormat(scheme=CheckScheme.UPS_1Z, prefix="1Z5R893903", digits=7),
            5756712,
            "1Z5R89390357567127",
        ),
        # DHL Express waybill 3318810025 (jkeen/tracking_number_data dhl.json)
        (DHL, 331881002, "3318810025"),
        # GS1's example SSCC, read as extension 1 + prefix 0614141 + serial + check
        (
            NumberFormat(scheme=CheckScheme.GS1_MOD10, prefix="10614141", digits=9),
            123456789,
            "106141411234567897",
        ),
    ],
)
def test_format_and_parse_reproduce_published_numbers(fmt: NumberFormat, serial: int, published: str) -> None:
    assert format_number(fmt, serial) == published
    assert parse_number(fmt, published) == serial
    assert parse_number(fmt, f"  {published.lower()} ") == serial  # as a person types it


def test_s10_is_prefix_8_digits_check_suffix() -> None:
    number = format_number(S10_US, 1)
    assert len(number) == 13
    assert number.startswith("RR00000001")
    assert number.endswith("US")
    assert is_valid(CheckScheme.MOD11, number)


@given(st.integers(min_value=0, max_value=10**7 - 1))
def test_every_ups_serial_round_trips_to_a_valid_1z(serial: int) -> None:
    number = format_number(UPS, serial)
    assert len(number) == 18
    assert is_valid(CheckScheme.UPS_1Z, number)
    assert parse_number(UPS, number) == serial


@given(st.sampled_from([S10_US, DHL, GS1, PLAIN]), st.integers(min_value=0, max_value=999_999))
def test_every_format_round_trips(fmt: NumberFormat, serial: int) -> None:
    assert parse_number(fmt, format_number(fmt, serial)) == serial


def test_parse_refuses_a_wrong_check_character_and_says_so() -> None:
    with pytest.raises(InputError, match=r"check character '6' where the mod11 scheme gives '5'"):
        parse_number(S10_US, "RR123456786US")
    with pytest.raises(InputError, match="check character"):
        parse_number(UPS, "1Z999AA10123456785")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RR12345678US",
        "RR1234567855US",
        "XX123456785US",
        "RR123456785GB",
        "RR12345A785US",
        "RR١٢٣٤٥٦٧٨5US",
        "R" * 10_000,
    ],
)
def test_parse_refuses_what_is_not_a_number_of_the_format(text: str) -> None:
    with pytest.raises(InputError) as raised:
        parse_number(S10_US, text)
    assert raised.value.code == "invalid_tracking_number"
    assert len(raised.value.message) < 300


@pytest.mark.parametrize("serial", [-1, 10**8, True, 1.0, "5"])
def test_format_refuses_a_serial_the_format_cannot_hold(serial: object) -> None:
    with pytest.raises(InputError, match="serial"):
        format_number(S10_US, serial)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scheme": "mod11", "prefix": "RR", "digits": 9}, "8 digits"),
        ({"scheme": "ups_1z", "prefix": "1Z999AA1", "digits": 7}, "shipper account"),
        ({"scheme": "ups_1z", "prefix": "1Z999AA101", "digits": 8}, "7 digits"),
        ({"scheme": "ups_1z", "prefix": "1Z999AA101", "digits": 7, "suffix": "X"}, "no suffix"),
        ({"scheme": "gs1_mod10", "prefix": "AB", "digits": 9}, "must be digits"),
        ({"scheme": "gs1_mod10", "prefix": "12345678", "digits": 10}, "17 digits"),
        ({"scheme": "none", "prefix": "rr", "digits": 8}, "pattern"),
        ({"scheme": "none", "prefix": "R-R", "digits": 8}, "pattern"),
        ({"scheme": "none", "prefix": "A" * 21, "digits": 8}, "at most 20"),
        ({"scheme": "none", "prefix": "A" * 20, "suffix": "B" * 10, "digits": 18}, "longer than 40"),
        ({"scheme": "none", "digits": 0}, "greater than or equal to 1"),
        ({"scheme": "none", "digits": "8"}, "valid integer"),
        ({"scheme": "crc4", "digits": 8}, "scheme"),
        ({"scheme": "none", "digits": 8, "check": "x"}, "Extra inputs"),
    ],
)
def test_a_format_that_cannot_work_is_refused_with_what_to_fix(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        NumberFormat.model_validate(fields)


def test_a_format_reads_back_from_its_json() -> None:
    assert NumberFormat.model_validate_json(S10_US.model_dump_json()) == S10_US


def test_validate_range_accepts_a_range_the_format_can_number() -> None:
    validate_range(S10_US, 0, 99_999)
    validate_range(S10_US, 99_999_999, 99_999_999)
    validate_range(UPS, 0, 9_999_999)


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        (10, 9, "first \\(10\\) is after last \\(9\\): swap them"),
        (0, 10**8, "wider than the format's 8 serial digits"),
        (-1, 5, "serial 0 or more"),
        (0, MAX_RANGE_SIZE, "more than 10,000,000"),
        (1.5, 3, "whole serials"),
        (False, 3, "whole serials"),
    ],
)
def test_validate_range_says_what_to_fix(first: object, last: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as raised:
        validate_range(S10_US, first, last)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_number_range"


def test_the_largest_allowed_range_is_allowed() -> None:
    validate_range(S10_US, 0, MAX_RANGE_SIZE - 1)
