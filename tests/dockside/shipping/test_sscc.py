"""SSCC-18: GS1's own example rebuilt from its parts, cross-checked with python-stdnum's GS1-128."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import ean, gs1_128

from dockside.errors import InputError
from dockside.shipping.check_digits import CheckScheme
from dockside.shipping.sscc import is_sscc, max_serial, sscc18, sscc_element_string
from dockside.shipping.tracking import NumberFormat, format_number, parse_number


def test_gs1s_example_sscc_is_rebuilt_from_its_parts() -> None:
    # (00)106141411234567897: extension 1, GS1 example company prefix 0614141, serial 123456789
    assert sscc18("0614141", 1, 123456789) == "106141411234567897"
    # BWIPP's SSCC-18 example (00)095287654321012346: extension 0, prefix 9528765, serial 432101234
    assert sscc18("9528765", 0, 432101234) == "095287654321012346"


@pytest.mark.parametrize(
    ("prefix", "top"), [("0614141", 999_999_999), ("06141412", 99_999_999), ("0614141234", 999_999)]
)
def test_the_serial_width_is_16_minus_the_prefix(prefix: str, top: int) -> None:
    assert max_serial(prefix) == top
    sscc = sscc18(prefix, 9, top)
    assert len(sscc) == 18
    assert sscc[1 : 1 + len(prefix)] == prefix
    with pytest.raises(InputError, match=f"use 0 to {top}"):
        sscc18(prefix, 9, top + 1)


@given(
    st.text(alphabet="0123456789", min_size=7, max_size=10),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=999_999),
)
def test_every_sscc_is_a_valid_gs1_128_ai_00(prefix: str, extension: int, serial: int) -> None:
    sscc = sscc18(prefix, extension, serial)
    assert is_sscc(sscc)
    # independent checks: stdnum's own GS1 check digit, and its GS1-128 encoder and parser
    assert ean.calc_check_digit(sscc[:17]) == sscc[17]
    element = sscc_element_string(sscc)
    assert element == gs1_128.encode({"00": sscc}, parentheses=True)
    assert gs1_128.info(gs1_128.validate(element)) == {"00": sscc}


@pytest.mark.parametrize("prefix", ["", "123456", "12345678901", "06141A1", "٠٦١٤١٤١", None, 614141])
def test_a_company_prefix_that_is_not_7_to_10_digits_is_refused(prefix: object) -> None:
    with pytest.raises(InputError, match="7 to 10 digits") as raised:
        sscc18(prefix, 0, 1)  # type: ignore[arg-type]
    assert raised.value.code == "invalid_gs1_prefix"
    with pytest.raises(InputError):
        max_serial(prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize("extension", [-1, 10, True, "1", 1.0])
def test_an_extension_digit_outside_0_to_9_is_refused(extension: object) -> None:
    with pytest.raises(InputError, match="extension digit is 0 to 9"):
        sscc18("0614141", extension, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("serial", [-1, True, 1.0, "12"])
def test_a_serial_that_is_not_a_whole_number_in_range_is_refused(serial: object) -> None:
    with pytest.raises(InputError, match="does not fit"):
        sscc18("0614141", 0, serial)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["106141411234567890", "10614141123456789", "1061414112345678970", "", "1" * 10_000, "١" * 18]
)
def test_the_element_string_refuses_what_is_not_an_sscc(text: str) -> None:
    assert not is_sscc(text)
    with pytest.raises(InputError, match="is not an SSCC"):
        sscc_element_string(text)


@given(
    st.text(alphabet="0123456789", min_size=7, max_size=10),
    st.integers(min_value=0, max_value=9),
    st.integers(min_value=0, max_value=999_999),
)
def test_the_sscc_number_format_numbers_exactly_the_ssccs(prefix: str, extension: int, serial: int) -> None:
    # How a carrier of tracking kind sscc leases SSCCs like any range: a GS1 mod 10 NumberFormat
    # whose prefix is the extension digit and the company prefix (cloud.shipping.carriers.sscc_format).
    fmt = NumberFormat(scheme=CheckScheme.GS1_MOD10, prefix=f"{extension}{prefix}", digits=16 - len(prefix))
    sscc = sscc18(prefix, extension, serial)
    assert format_number(fmt, serial) == sscc
    assert parse_number(fmt, sscc) == serial
