"""The bar patterns printers draw, for previews: Code 128 in subset B, Code 39 and QR codes.

Both Zebra's `^BC` (mode N, no invocation codes) and ESC/POS `{B` data print Code 128 in subset
B from start to stop; python-barcode's own encoder would switch to subset C for digit runs and draw
a narrower barcode than the printer does, so only its pattern tables are used here.
"""

from __future__ import annotations

import qrcode  # type: ignore[import-untyped]
from barcode.charsets import code128  # type: ignore[import-untyped]
from barcode.codex import Code39  # type: ignore[import-untyped]

__all__ = ["code39_modules", "code128_b_modules", "qr_modules"]

_QR_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


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
