"""Check characters of carrier tracking numbers: compute one for a number's body, or check a number.

A carrier that issues a number range names the scheme its numbers end with; a label whose number
has a wrong check character is refused by the carrier's scanners, so Dockside computes it rather
than trusting a range's author. The schemes:

    none        no check character (the body is the whole number)
    gs1_mod10   GS1 standard check digit (GTIN, GLN, SSCC): weights 3,1 from the right, mod 10
    mod11       UPU S10 (postal items, "RR123456785GB"): the 8 serial digits weighted
                8,6,4,2,3,5,9,7; 11 - sum mod 11, where 10 gives 0 and 11 gives 5
    mod7        the number mod 7 (DHL Express waybills, 10 or 11 digits with the check)
    ups_1z      UPS "1Z" numbers: the 15 characters after "1Z", letters mapped to digits as UPS
                does (A=2 ... H=9, I=0, J=1 ..., i.e. (ord - 63) mod 10), odd positions counted
                once, even positions twice, and 10 - sum mod 10

`check_character(scheme, body)` raises ValueError on a body the scheme cannot take (wrong
length, a letter among digits, a non-ASCII digit such as '٣' that `int()` would quietly accept);
`is_valid(scheme, number)` never raises: anything malformed is simply not valid.
"""

from __future__ import annotations

from enum import StrEnum

from stdnum import ean

__all__ = ["MAX_NUMBER_LENGTH", "CheckScheme", "check_character", "is_valid"]

# The longest tracking number any scheme here takes (GS1 keys are at most 18 digits, UPS 18
# characters); a bound so hostile input is refused before any arithmetic on it.
MAX_NUMBER_LENGTH = 40

_DIGITS = frozenset("0123456789")
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


class CheckScheme(StrEnum):
    """How a carrier's tracking number ends in a check character."""

    NONE = "none"
    GS1_MOD10 = "gs1_mod10"
    MOD11 = "mod11"
    MOD7 = "mod7"
    UPS_1Z = "ups_1z"


def _ascii_digits(body: str, what: str) -> None:
    if not body or not set(body) <= _DIGITS:
        raise ValueError(f"{what} must be ASCII digits 0-9 only, got {_shown(body)}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:24] + "...")


def check_character(scheme: CheckScheme | str, body: str) -> str:
    """The check character `scheme` appends to `body` ("" for `none`); ValueError if it cannot."""
    scheme = CheckScheme(scheme)
    if not isinstance(body, str):
        raise ValueError(f"a number's body must be text, not {type(body).__name__}")
    if len(body) > MAX_NUMBER_LENGTH:
        raise ValueError(f"a number's body is at most {MAX_NUMBER_LENGTH} characters, got {len(body):,}")
    if scheme is CheckScheme.NONE:
        return ""
    if scheme is CheckScheme.GS1_MOD10:
        _ascii_digits(body, "a GS1 number's body")
        if len(body) > 17:
            raise ValueError(f"a GS1 key has at most 17 digits before its check digit, got {len(body)}")
        return ean.calc_check_digit(body)
    if scheme is CheckScheme.MOD11:
        _ascii_digits(body, "a UPU S10 serial")
        if len(body) != 8:
            raise ValueError(f"a UPU S10 serial is exactly 8 digits, got {len(body)}")
        check = 11 - sum(w * int(d) for w, d in zip(_S10_WEIGHTS, body, strict=True)) % 11
        return {10: "0", 11: "5"}.get(check, str(check))
    if scheme is CheckScheme.MOD7:
        _ascii_digits(body, "a mod 7 number's body")
        return str(int(body) % 7)
    # UPS_1Z
    if len(body) != 15 or not set(body) <= _ALNUM:
        raise ValueError(
            "a UPS number's body is the 15 characters A-Z and 0-9 after '1Z' "
            f"(shipper, service, package), got {_shown(body)}"
        )
    total = 0
    for position, char in enumerate(body):
        value = int(char) if char in _DIGITS else (ord(char) - 63) % 10
        total += value if position % 2 == 0 else 2 * value
    return str((10 - total % 10) % 10)


def is_valid(scheme: CheckScheme | str, number: str) -> bool:
    """Whether `number` (body and check character, with "1Z" for UPS) is well formed for `scheme`.

    For mod11 the number may be the 9 digits (serial and check) or a whole S10 identifier
    (two letters, 9 digits, two letters). Never raises: malformed input is not valid.
    """
    try:
        scheme = CheckScheme(scheme)
    except ValueError:
        return False
    if not isinstance(number, str) or not number or len(number) > MAX_NUMBER_LENGTH:
        return False
    try:
        if scheme is CheckScheme.NONE:
            return set(number) <= _ALNUM
        if scheme is CheckScheme.UPS_1Z:
            return (
                len(number) == 18
                and number[:2] == "1Z"
                and check_character(scheme, number[2:17]) == number[17]
            )
        if scheme is CheckScheme.MOD11 and len(number) == 13:
            if not (set(number[:2]) | set(number[11:])) <= _ALNUM - _DIGITS:
                return False
            number = number[2:11]
        if scheme is CheckScheme.GS1_MOD10 and len(number) < 2:
            return False
        return check_character(scheme, number[:-1]) == number[-1]
    except ValueError:
        return False
