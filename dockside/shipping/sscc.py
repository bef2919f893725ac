"""GS1 SSCC-18: the number on a B2B carton's label, built from the brand's GS1 company prefix.

    extension (1) | GS1 company prefix (7..10) | serial reference (16 - prefix) | check (1)

The extension digit (0..9) is the brand's to use, here to keep cartons of different warehouses
or agents apart or to widen the serial space; the check digit is GS1's standard mod 10. On the
carton label the SSCC is GS1-128 Application Identifier (00): `sscc_element_string` gives its
human-readable form, "(00)" and the 18 digits.
"""

from __future__ import annotations

from dockside.errors import InputError
from dockside.shipping.check_digits import CheckScheme, check_character, is_valid

__all__ = ["is_sscc", "max_serial", "sscc18", "sscc_element_string"]

_DIGITS = frozenset("0123456789")


def _check_prefix(company_prefix: str) -> None:
    if (
        not isinstance(company_prefix, str)
        or not 7 <= len(company_prefix) <= 10
        or not set(company_prefix) <= _DIGITS
    ):
        shown = repr(company_prefix)[:30]
        raise InputError(
            f"a GS1 company prefix is 7 to 10 digits (as GS1 allocated it), got {shown}",
            code="invalid_gs1_prefix",
        )


def max_serial(company_prefix: str) -> int:
    """The highest serial reference an SSCC of this company prefix can hold (16 - len digits)."""
    _check_prefix(company_prefix)
    return int("9" * (16 - len(company_prefix)))


def sscc18(company_prefix: str, extension: int, serial: int) -> str:
    """The 18-digit SSCC of `serial` under `company_prefix` and `extension`, check digit included."""
    _check_prefix(company_prefix)
    if not isinstance(extension, int) or isinstance(extension, bool) or not 0 <= extension <= 9:
        raise InputError(f"an SSCC extension digit is 0 to 9, got {extension!r}", code="invalid_sscc")
    top = max_serial(company_prefix)
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 <= serial <= top:
        raise InputError(
            f"serial {serial!r} does not fit an SSCC of a {len(company_prefix)}-digit company prefix: "
            f"use 0 to {top}",
            code="invalid_sscc",
        )
    body = f"{extension}{company_prefix}{serial:0{16 - len(company_prefix)}d}"
    return body + check_character(CheckScheme.GS1_MOD10, body)


def is_sscc(number: str) -> bool:
    """Whether `number` is 18 ASCII digits with a right GS1 check digit."""
    return isinstance(number, str) and len(number) == 18 and is_valid(CheckScheme.GS1_MOD10, number)


def sscc_element_string(sscc: str) -> str:
    """The GS1 element string of an SSCC, as printed under its barcode: "(00)" and the 18 digits."""
    if not is_sscc(sscc):
        raise InputError(
            f"{repr(sscc)[:30]} is not an SSCC: 18 digits ending in the GS1 check digit",
            code="invalid_sscc",
        )
    return f"(00){sscc}"
