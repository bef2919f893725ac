"""Tracking-number formats of carrier-issued ranges: a serial in, the carrier's number out, and back.

A carrier issues a range of serials and says how a tracking number is built from one: a fixed
prefix, the serial zero-padded to a fixed width, a check character, a fixed suffix. The cloud
keeps the ranges and leases blocks of serials to agents; an agent turns the next serial of its
lease into the number it prints with `format_number`. Examples:

    UPU S10 (mod11)     prefix "RR", digits 8, suffix "US"   -> RR 12345678 5 US
    UPS (ups_1z)        prefix "1Z" + shipper (6) + service (2), digits 7 -> 1Z 999AA1 01 2345678 4
    DHL Express (mod7)  prefix "", digits 9                  -> 331881002 5
    GS1 (gs1_mod10)     prefix digits (e.g. a USPS IMpb head), digits N -> ... check

What the check character covers: the 8 serial digits for mod11 (S10 leaves the letters out), the
15 characters after "1Z" for ups_1z, and prefix and serial for gs1_mod10 and mod7 (whose prefix
must then be digits). The suffix is never covered.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from dockside.errors import InputError
from dockside.shipping.check_digits import CheckScheme, check_character

__all__ = ["MAX_RANGE_SIZE", "NumberFormat", "format_number", "parse_number", "validate_range"]

# One carrier range is at most this many serials: more is a typo (a digit too many in `last`),
# and the cloud's bookkeeping of a range stays a bounded amount of work.
MAX_RANGE_SIZE = 10_000_000
_MAX_NUMBER_LENGTH = 40  # ExpectedParcel.tracking_number's bound, and what fits a 4x6 barcode
_DIGITS = frozenset("0123456789")


class NumberFormat(BaseModel):
    """How a carrier builds a tracking number from a serial: prefix, serial, check, suffix."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    scheme: CheckScheme = CheckScheme.NONE
    prefix: Annotated[str, StringConstraints(max_length=20, pattern=r"^[A-Z0-9]*$")] = ""
    suffix: Annotated[str, StringConstraints(max_length=10, pattern=r"^[A-Z0-9]*$")] = ""
    digits: Annotated[int, Field(ge=1, le=18, strict=True)]

    @model_validator(mode="after")
    def _fits_scheme(self) -> Self:
        scheme = self.scheme
        if scheme is CheckScheme.MOD11 and self.digits != 8:
            raise ValueError(f"a UPU S10 (mod11) serial is 8 digits: set digits to 8, not {self.digits}")
        if scheme is CheckScheme.UPS_1Z:
            if len(self.prefix) != 10 or not self.prefix.startswith("1Z"):
                raise ValueError(
                    "a UPS (ups_1z) prefix is '1Z', the 6-character shipper account and the 2-character "
                    f"service code (10 characters, e.g. '1Z999AA101'), got {self.prefix!r}"
                )
            if self.digits != 7:
                raise ValueError(
                    f"a UPS (ups_1z) package serial is 7 digits: set digits to 7, not {self.digits}"
                )
            if self.suffix:
                raise ValueError("a UPS (ups_1z) number has no suffix: leave suffix empty")
        if scheme in (CheckScheme.GS1_MOD10, CheckScheme.MOD7) and not set(self.prefix) <= _DIGITS:
            raise ValueError(
                f"a {scheme.value} check digit covers the prefix, so the prefix must be digits, "
                f"got {self.prefix!r}"
            )
        if scheme is CheckScheme.GS1_MOD10 and len(self.prefix) + self.digits > 17:
            raise ValueError(
                "a GS1 key has at most 17 digits before its check digit: "
                f"prefix ({len(self.prefix)}) and digits ({self.digits}) add up to more"
            )
        if len(self.prefix) + self.digits + 1 + len(self.suffix) > _MAX_NUMBER_LENGTH:
            raise ValueError(f"the tracking numbers would be longer than {_MAX_NUMBER_LENGTH} characters")
        return self

    def checked_body(self, serial_text: str) -> str:
        """What the check character is computed over, for a serial already zero-padded."""
        if self.scheme is CheckScheme.MOD11:
            return serial_text
        if self.scheme is CheckScheme.UPS_1Z:
            return self.prefix[2:] + serial_text
        return self.prefix + serial_text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_number(fmt: NumberFormat, serial: int) -> str:
    """The tracking number of `serial` in `fmt` (prefix, zero-padded serial, check, suffix)."""
    if not _is_int(serial) or serial < 0:
        raise InputError(f"a serial is a whole number from 0, got {serial!r}", code="invalid_tracking_number")
    serial_text = str(serial).zfill(fmt.digits)
    if len(serial_text) > fmt.digits:
        raise InputError(
            f"serial {serial} has more than the format's {fmt.digits} digits: "
            f"use serials up to {10**fmt.digits - 1}",
            code="invalid_tracking_number",
        )
    check = check_character(fmt.scheme, fmt.checked_body(serial_text))
    return f"{fmt.prefix}{serial_text}{check}{fmt.suffix}"


def parse_number(fmt: NumberFormat, text: str) -> int:
    """The serial of tracking number `text` in `fmt`; InputError if it is not one (check included)."""
    if not isinstance(text, str) or len(text) > 4 * _MAX_NUMBER_LENGTH:
        raise InputError("a tracking number is text of at most 40 characters", code="invalid_tracking_number")
    number = text.strip().upper().replace(" ", "")
    check_width = 0 if fmt.scheme is CheckScheme.NONE else 1
    width = len(fmt.prefix) + fmt.digits + check_width + len(fmt.suffix)
    shown = repr(number[:44])
    if len(number) != width or not number.startswith(fmt.prefix) or not number.endswith(fmt.suffix):
        raise InputError(
            f"{shown} is not a number of this format: expected {width} characters, "
            f"{fmt.prefix!r} + {fmt.digits} digits{' + check' if check_width else ''} + {fmt.suffix!r}",
            code="invalid_tracking_number",
        )
    serial_text = number[len(fmt.prefix) : len(fmt.prefix) + fmt.digits]
    if not set(serial_text) <= _DIGITS:
        raise InputError(
            f"{shown}: its serial part {serial_text!r} must be digits 0-9", code="invalid_tracking_number"
        )
    given = number[len(fmt.prefix) + fmt.digits : len(fmt.prefix) + fmt.digits + check_width]
    expected = check_character(fmt.scheme, fmt.checked_body(serial_text))
    if given != expected:
        raise InputError(
            f"{shown} has check character {given!r} where the {fmt.scheme.value} scheme gives "
            f"{expected!r}: the number is mistyped or the range's scheme is wrong",
            code="invalid_tracking_number",
        )
    return int(serial_text)


def validate_range(fmt: NumberFormat, first: int, last: int) -> None:
    """Refuse a carrier range of serials `first..last` (inclusive) that `fmt` cannot number."""
    if not _is_int(first) or not _is_int(last):
        raise InputError(
            f"a range's first and last are whole serials, got {first!r} and {last!r}",
            code="invalid_number_range",
        )
    if first < 0:
        raise InputError(
            f"a range starts at serial 0 or more, got first={first}", code="invalid_number_range"
        )
    if first > last:
        raise InputError(
            f"first ({first}) is after last ({last}): swap them, a range runs from first up to last",
            code="invalid_number_range",
        )
    top = 10**fmt.digits - 1
    if last > top:
        raise InputError(
            f"last ({last}) is wider than the format's {fmt.digits} serial digits: "
            f"the highest serial is {top}; fix `last` or the format's `digits`",
            code="invalid_number_range",
        )
    size = last - first + 1
    if size > MAX_RANGE_SIZE:
        raise InputError(
            f"the range holds {size:,} serials, more than {MAX_RANGE_SIZE:,}: "
            "check first and last for a digit too many, or add it as several ranges",
            code="invalid_number_range",
        )
