"""The bar patterns printers draw, for previews and for measuring: Code 128, Code 39 and QR codes.

A Zebra `^BC` in mode N (no mode, the one templates use) reads its field data as the ZPL manual's
invocation codes say: a leading `>:` starts subset B, `>;` subset C, no start code means subset
B; inside the data `>5` switches to C, `>6` to B, `>8` is FNC1 (which makes a GS1-128 symbol when
it follows the start), and `><`, `>0`, `>=` are the values 62, 30 and 94 (`^`, `>` and `~` in
subset B). In subset C the data is digit pairs; a digit left unpaired before a code switch or at
the end is dropped, as the printer drops it. `zebra_code128` follows exactly that, so a preview
draws the symbol the printer prints and `barcode_fit` measures it. python-barcode's own encoder
chooses subsets by itself and would draw another symbol than the printer; only its pattern tables
are used. ESC/POS `{B` data is subset B from start to stop (`code128_b_modules`).
"""

from __future__ import annotations

from dataclasses import dataclass

import qrcode  # type: ignore[import-untyped]
from barcode.charsets import code128  # type: ignore[import-untyped]
from barcode.codex import Code39  # type: ignore[import-untyped]

__all__ = [
    "CODE128_QUIET_MODULES",
    "Code128Symbol",
    "code39_modules",
    "code128_b_modules",
    "qr_modules",
    "zebra_code128",
]

# ISO/IEC 15417: at least ten modules of white either side of a Code 128 symbol.
CODE128_QUIET_MODULES = 10

_QR_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
_START = {"A": 103, "B": 104, "C": 105}
_FNC1 = 102
_CODE_C, _CODE_B = 99, 100
# Invocation codes with a fixed value in subset B (the manual's table); >5 and >6 change subsets.
_B_INVOCATIONS = {"<": 62, "0": 30, "=": 94, "1": 95, "2": 96, "3": 97, "4": 98, "8": _FNC1}
_START_CODES = {":": "B", ";": "C", "9": "A"}


@dataclass(frozen=True, slots=True)
class Code128Symbol:
    """A Code 128 symbol: its symbol values (start to check), its modules and what it reads as.

    `text` is what a scanner transmits (FNC1 after the start is the GS1-128 flag and is not in it;
    a later FNC1 is the GS1 group separator, chr(29)); `gs1` is true when FNC1 follows the start.
    """

    values: tuple[int, ...]
    text: str
    gs1: bool

    @property
    def modules(self) -> str:
        """Modules ('1' bar, '0' space) from start to stop, without quiet zones."""
        patterns: tuple[str, ...] = code128.CODES
        return "".join(patterns[value] for value in self.values) + str(code128.STOP) + "11"

    @property
    def width_modules(self) -> int:
        """The symbol's width in modules without quiet zones: 11 per character and 13 for the stop."""
        return 11 * len(self.values) + 13


def _checked(values: list[int]) -> tuple[int, ...]:
    checksum = (values[0] + sum(position * value for position, value in enumerate(values[1:], 1))) % 103
    return (*values, checksum)


def zebra_code128(data: str) -> Code128Symbol:
    """The symbol a Zebra printer draws for `^BC...,N` field data `data` (after `^FH` decoding).

    Raises ValueError for what a preview cannot draw exactly: subset A (which Zebra programs in
    digit pairs), a start code in the middle, a character subset B lacks, an unknown invocation code.
    """
    subset, pos = "B", 0
    if data[:1] == ">" and data[1:2] in _START_CODES:
        subset, pos = _START_CODES[data[1]], 2
    if subset == "A":
        raise ValueError("Code 128 subset A (>9) is not drawn by the preview")
    values = [_START[subset]]
    text: list[str] = []
    gs1 = False
    pending = ""  # subset C: the first digit of a pair
    while pos < len(data):
        char = data[pos]
        if char == ">" and pos + 1 < len(data):
            code = data[pos + 1]
            pos += 2
            pending = ""  # an unpaired digit before an invocation code is dropped
            if code in _START_CODES:
                raise ValueError(f"the start code >{code} may only open the field data")
            if code == "8":
                gs1 = gs1 or len(values) == 1
                if len(values) > 1:
                    text.append("\x1d")
                values.append(_FNC1)
            elif subset == "B" and code in _B_INVOCATIONS:
                value = _B_INVOCATIONS[code]
                values.append(value)
                if value < 95:
                    text.append(chr(value + 32))
            elif code == "5" and subset == "B":
                values.append(_CODE_C)
                subset = "C"
            elif code == "6" and subset == "C":
                values.append(_CODE_B)
                subset = "B"
            else:
                raise ValueError(f"the invocation code >{code} in subset {subset} is not drawn exactly")
            continue
        pos += 1
        if subset == "B":
            if char not in code128.B or char == ">":
                raise ValueError(f"Code 128 subset B has no {char!r}")
            values.append(code128.B[char])
            text.append(char)
        elif char.isascii() and char.isdigit():
            if pending:
                values.append(int(pending + char))
                text.append(pending + char)
                pending = ""
            else:
                pending = char
        else:
            # The manual: a non-digit first in a pair is ignored; second in a pair, it voids the pair.
            pending = ""
    return Code128Symbol(_checked(values), "".join(text), gs1)


def code128_b_modules(text: str) -> str:
    """Modules ('1' bar, '0' space) of `text` in Code 128 subset B; characters it lacks are skipped."""
    values = [code128.START_CODES["B"]]
    values.extend(code128.B[char] for char in text if char in code128.B)
    checksum = (values[0] + sum(position * value for position, value in enumerate(values[1:], 1))) % 103
    values.append(checksum)
    patterns: tuple[str, ...] = code128.CODES
    return "".join(patterns[value] for value in values) + str(code128.STOP) + "11"


def code39_modules(text: str) -> str:
    """Modules of `text` in Code 39 without a check digit; raises ValueError for characters it lacks."""
    try:
        return str(Code39(text.upper(), add_checksum=False).build()[0])
    except Exception as exc:  # python-barcode raises its own error types without a common base
        raise ValueError(f"Code 39 cannot encode {text[:30]!r}") from exc


def qr_modules(text: str, level: str) -> list[list[bool]]:
    """Rows of modules (True dark) of `text` as a QR code with no quiet zone.

    `level` is the error correction, L, M, Q or H; anything else is M, as a printer's default.
    """
    code = qrcode.QRCode(error_correction=_QR_LEVELS.get(level, qrcode.constants.ERROR_CORRECT_M), border=0)
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]
