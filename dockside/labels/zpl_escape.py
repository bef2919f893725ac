"""Escaping values for ZPL field data, so no order field can open, close or inject a command.

Templates put values after `^FH^FD`; with `^FH` the printer reads `_XX` as the byte 0xXX. We hex-escape
the caret and tilde (command prefixes), the underscore (the escape character itself) and every
control character. Other characters pass as UTF-8, which `^CI28` tells the printer to expect.
"""

from __future__ import annotations

from typing import Any

__all__ = ["zpl_field"]

_ESCAPES = {c: f"_{c:02X}" for c in range(0x20)}
_ESCAPES.update({ord("^"): "_5E", ord("~"): "_7E", ord("_"): "_5F", 0x7F: "_7F"})
# C1 control characters (U+0080..U+009F) and line/paragraph separators are dropped to a space:
# they are invisible on a label and some firmwares act on them.
_ESCAPES.update({c: " " for c in range(0x80, 0xA0)})
_ESCAPES.update({0x2028: " ", 0x2029: " "})
_TABLE = str.maketrans(_ESCAPES)


def zpl_field(value: Any) -> str:
    """A value as safe ZPL field data (for use after `^FH`)."""
    if value is None:
        return ""
    return str(value).translate(_TABLE)
