"""Reading a packer's scan: what a barcode scanner typed, turned into the order reference it names.

A keyboard-wedge scanner types more than the reference: a prefix or suffix it was set up to add
(STX, `*`, an Enter), an AIM symbology identifier (`]C1`), or a whole GS1 element string whose
application identifiers (AIs) say which part is the order. `ScanReader` reads each of these:

- a plain reference is kept as it is (`DEMO-0001`);
- the configured prefix and suffix are taken off when present, whitespace around everything;
- a GS1 element string, as scanners type it, gives the value of the first configured AI it holds
  (by default `400`, the customer's purchase order number, then `401`, the GINC):
  `]C1` / `]e0` / `]d2` / `]Q3` / `]J1` + AIs with FNC1 as the GS character (`\\x1d`) ending each
  variable-length field, the same without the identifier when a GS is in it, or the bracketed
  human-readable form `(400)ORDER-1(10)LOT`. Any other AIM identifier (`]C0`, plain Code 128) is
  taken off and what follows is read as a plain reference. Digits alone are a plain reference:
  without a GS1 identifier, a GS or brackets nothing says they are AIs.

Everything else is refused with `ScanUnreadable` (422 `scan_unreadable`), saying what was wrong
and what to do, and never echoing the scan: more than `MAX_SCAN_CHARS` characters (checked before
any other work, so a hostile scan costs nothing), control characters other than GS, a GS1 string
that is malformed or lacks every configured AI (naming the AIs it has), and a result that is not
an order reference (letters, digits and `. _ -`, at most 64 characters).

The AI table (which AIs exist, fixed or variable length) and the check of each element's value
(length, GTIN check digit, dates) are python-stdnum's (`stdnum.gs1_128` and its `gs1_ai`
database). Splitting the string into elements is done here: stdnum's own splitter keeps a GS in
a value when a variable-length field is empty and lets a value run past its maximum when a GS
follows, and it drops the brackets of the human-readable form, which then runs a variable-length
value into the next AI.

Pure: no I/O, no state; one reader serves every request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from pydantic import TypeAdapter, ValidationError
from stdnum import gs1_128, numdb
from stdnum.exceptions import ValidationError as StdnumInvalid

from dockside.errors import InputError
from dockside.orders import Ref

__all__ = [
    "GS",
    "MAX_AFFIX_CHARS",
    "MAX_SCAN_CHARS",
    "ORDER_AIS",
    "ScanReader",
    "ScanUnreadable",
    "check_affix",
    "check_order_ais",
]

# Longer than any barcode a packer scans for an order (a GS1-128 symbol holds at most 48 data
# characters; a 2D code more, but not for an order): more is something else typed or pasted.
MAX_SCAN_CHARS: Final = 128
MAX_AFFIX_CHARS: Final = 16
# 400: customer's purchase order number; 401: Global Identification Number for Consignment.
ORDER_AIS: Final = ("400", "401")
# FNC1 as a keyboard-wedge scanner types it: the ASCII group separator ends a variable field.
GS: Final = "\x1d"

# The AIM symbology identifiers of the GS1 symbologies: GS1-128, DataBar, DataMatrix, QR, DotCode.
_GS1_SYMBOLOGIES: Final = frozenset({"]C1", "]e0", "]d2", "]Q3", "]J1"})
_AIM_IDENTIFIER = re.compile(r"\][A-Za-z][0-9A-Za-z]")
# Whitespace to trim: every kind (all are below U+3001) except the ASCII separators, which
# Python counts as whitespace but GS1 gives a meaning.
_BLANKS: Final = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\x1c\x1d\x1e\x1f")
_CONTROL = re.compile(r"[\x00-\x1c\x1e-\x1f\x7f-\x9f]")
# `(AI)value` repeated: each part opens with "(" and no value holds one, so matching is linear.
_BRACKETED = re.compile(r"(?:\([0-9]{2,4}\)[^()]*)+")
_BRACKETED_ELEMENT = re.compile(r"\(([0-9]{2,4})\)([^()]*)")
_AI = re.compile(r"[0-9]{2,4}")
_NUMBER = re.compile(r"[0-9]+")
_AI_TABLE = numdb.get("gs1_ai")
_ORDER_REF = TypeAdapter(Ref)
_NOT_AN_ORDER = (
    "the scan is not an order reference (letters, digits and . _ - only, at most 64 characters): "
    "scan the order's barcode"
)


class ScanUnreadable(InputError):
    """What the scanner typed names no order reference: the message says why and what to do."""

    code = "scan_unreadable"


def _describe_ai(ai: str) -> str:
    """`(400) ORDER NUMBER`: the AI and its GS1 data title, as stdnum's table has it."""
    found = _known_ai(ai)
    return f"({ai}) {found['name']}" if found else f"({ai})"


def _known_ai(ai: str) -> dict[str, str] | None:
    """stdnum's entry for exactly `ai` (format, type, `fnc1` when variable length), else None."""
    parts = _AI_TABLE.info(ai)
    if parts and parts[0][0] == ai and parts[0][1]:
        entry: dict[str, str] = parts[0][1]
        return entry
    return None


def check_affix(value: str) -> str:
    """A scanner prefix or suffix as a setting: at most 16 characters, no GS; the whitespace
    around it dropped (scans are trimmed first, so an Enter or Tab suffix needs no setting)."""
    if len(value) > MAX_AFFIX_CHARS:
        raise ValueError(f"is longer than {MAX_AFFIX_CHARS} characters: give what the scanner adds, exactly")
    if GS in value:
        raise ValueError("must not hold the GS character (\\u001d): it separates GS1 fields")
    return value.strip(_BLANKS)


def check_order_ais(values: Iterable[str]) -> tuple[str, ...]:
    """The GS1 AIs that carry the order reference, as a setting: known AIs, at least one, no repeats."""
    ais = tuple(values)
    if not ais:
        raise ValueError('name at least one GS1 application identifier, for example ["400", "401"]')
    for ai in ais:
        if not _AI.fullmatch(ai) or _known_ai(ai) is None:
            raise ValueError(
                f"{ai[:8]!r} is not a GS1 application identifier: give each as a text of 2 to 4 "
                'digits, for example "400" (customer\'s purchase order number) or "401" (GINC)'
            )
    if len(set(ais)) != len(ais):
        raise ValueError("names an application identifier twice: name each once, in order of preference")
    return ais


@dataclass(frozen=True)
class ScanReader:
    """Turns what a station's scanner typed into an order reference, or refuses it with the fix.

    `prefix` and `suffix` are what the scanners were set up to add (taken off only when present);
    `order_ais` the GS1 AIs that carry the order reference, in order of preference.
    """

    prefix: str = ""
    suffix: str = ""
    order_ais: tuple[str, ...] = ORDER_AIS

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", check_affix(self.prefix))
        object.__setattr__(self, "suffix", check_affix(self.suffix))
        object.__setattr__(self, "order_ais", check_order_ais(self.order_ais))

    def order_ref(self, scanned: str) -> str:
        """The order reference `scanned` names; `ScanUnreadable` saying what to do when none."""
        if len(scanned) > MAX_SCAN_CHARS:
            raise ScanUnreadable(
                f"the scan is {len(scanned):,} characters long, more than the {MAX_SCAN_CHARS} an order "
                "barcode has: clear the scan field and scan the order's barcode alone"
            )
        text = self._unwrapped(scanned)
        control = _CONTROL.search(text)
        if control:
            raise ScanUnreadable(
                f"the scan holds a control character (U+{ord(control.group()):04X}): set the scanner to "
                "send the barcode's text only (or set [scanner] prefix and suffix to what it adds)"
            )
        aim = _AIM_IDENTIFIER.match(text)
        if aim:
            text = text[aim.end() :]
            if aim.group() in _GS1_SYMBOLOGIES:
                return self._from_gs1(text)
        elif text.startswith("(") or GS in text:
            return self._from_gs1(text)
        return _order_reference(text)

    def _unwrapped(self, scanned: str) -> str:
        text = scanned.strip(_BLANKS)
        if self.prefix and text.startswith(self.prefix):
            text = text[len(self.prefix) :]
        if self.suffix and text.endswith(self.suffix):
            text = text[: -len(self.suffix)]
        text = text.strip(_BLANKS)
        if not text:
            raise ScanUnreadable("the scan is empty: scan the order's barcode")
        return text

    def _from_gs1(self, text: str) -> str:
        elements = _bracketed_elements(text) if text.startswith("(") else _fnc1_elements(text)
        values: dict[str, str] = {}
        for ai, value in elements:
            _check_element(ai, value)
            if values.setdefault(ai, value) != value:
                raise _malformed(f"it holds AI ({ai}) twice, with different values")
        for ai in self.order_ais:
            if ai in values:
                return _order_reference(values[ai])
        held = ", ".join(f"({ai})" for ai in values)
        wanted = " or ".join(_describe_ai(ai) for ai in self.order_ais)
        raise ScanUnreadable(
            f"the GS1 code holds AIs {held} but no order reference AI {wanted}: scan the order's "
            "barcode, or add its AI to [scanner] order_ais in the agent's configuration"
        )


def _order_reference(text: str) -> str:
    try:
        return _ORDER_REF.validate_python(text)
    except ValidationError:
        raise ScanUnreadable(_NOT_AN_ORDER) from None


def _malformed(what: str) -> ScanUnreadable:
    return ScanUnreadable(f"the scan looks like a GS1 code but {what}: scan the order's barcode again")


def _bracketed_elements(text: str) -> list[tuple[str, str]]:
    """`(400)ORDER-1(10)LOT` as [("400", "ORDER-1"), ("10", "LOT")]: brackets mark every AI."""
    if GS in text or not _BRACKETED.fullmatch(text):
        raise _malformed("its brackets are not (AI)value, (AI)value... with AIs of 2 to 4 digits")
    return [(match.group(1), match.group(2)) for match in _BRACKETED_ELEMENT.finditer(text)]


def _fnc1_elements(text: str) -> list[tuple[str, str]]:
    """An element string as scanners type it: a fixed-length field ends at its length, a
    variable-length one at the next GS or the end (a leading GS is FNC1 in first position)."""
    elements = []
    offset = 0  # of the segment in `text`, to say where a field went wrong
    for segment in text.split(GS):
        at = 0
        while at < len(segment):
            # No AI is longer than 4 digits: the table needs no more to find one.
            ai, entry = _AI_TABLE.info(segment[at : at + 4])[0]
            if not entry or not segment.startswith(ai, at):
                raise _malformed(f"no known application identifier starts at character {offset + at + 1}")
            end = len(segment)
            if not entry.get("fnc1"):
                end = min(end, at + len(ai) + _width(entry["format"]))
            elements.append((ai, segment[at + len(ai) : end]))
            at = end
        offset += len(segment) + 1
    if not elements:
        raise _malformed("it holds no field")
    return elements


def _width(fmt: str) -> int:
    """The most characters a field of stdnum's format `fmt` holds: "X..30" 30, "N18" 18,
    "N6[+N6]" 12, "N6+[-]" 7 (an optional sign)."""
    return sum(max((int(n) for n in _NUMBER.findall(part)), default=1) for part in fmt.split("+"))


def _check_element(ai: str, value: str) -> None:
    """One field against stdnum's table: a known AI, a value of its length and kind."""
    entry = _known_ai(ai)
    if entry is None:
        raise _malformed(f"({ai}) is not a known application identifier")
    if not value:
        raise _malformed(f"AI ({ai}) has no value")
    width = _width(entry["format"])
    if not entry.get("fnc1"):
        # Every predefined-length AI is numeric ("N18", "N6" ...).
        if len(value) != width or not value.isascii() or not value.isdigit():
            raise _malformed(f"AI ({ai}) must be followed by exactly {width} digits")
    elif len(value) > width:
        raise _malformed(f"the value of AI ({ai}) is longer than its {width} characters")
    try:
        parsed = gs1_128.info(ai + value)
    except AttributeError:
        # stdnum 2.2 cannot size the formats "N6+[-]", "N18+[N1..N2]" and "Z..90" (AIs 4330 to
        # 4333, 8043, 8030) and fails this way: the length checked above is their whole check.
        return
    except (StdnumInvalid, ValueError, ArithmeticError):
        parsed = {}
    if list(parsed) != [ai]:
        raise _malformed(f"the value of AI ({ai}) is not one its format allows ({entry['format']})")
