"""Escaping values for ZPL field data, so no order field can open, close or inject a command.

Templates put values after `^FH^FD`; with `^FH` the printer reads `_XX` as the byte 0xXX. We hex-escape
the caret and tilde (command prefixes), the underscore (the escape character itself), the backslash
(`^FB` reads `\\&` as a line break) and every control character. Other characters pass as UTF-8,
which `^CI28` tells the printer to expect.

Every inserted value is also cut to `MAX_VALUE_CHARS`: ZPL field data holds at most 3,072 bytes,
and a value that long is an upstream bug, not an address.
"""

from __future__ import annotations

import re
from typing import Any

from dockside.labels.work_bounds import text_of

__all__ = ["MAX_VALUE_CHARS", "code128_data", "zpl_field"]

MAX_VALUE_CHARS = 500

_ESCAPES: dict[int, str] = {c: f"_{c:02X}" for c in range(0x20)}
_ESCAPES.update({ord("^"): "_5E", ord("~"): "_7E", ord("_"): "_5F", ord("\\"): "_5C", 0x7F: "_7F"})
# C1 control characters (U+0080..U+009F) and line/paragraph separators become a space: they are
# invisible on a label and some firmwares act on them. Lone surrogates (from JSON "\ud800") cannot
# be encoded as UTF-8 at all, so they become the replacement character.
_ESCAPES.update({c: " " for c in range(0x80, 0xA0)})
_ESCAPES.update({0x2028: " ", 0x2029: " "})
_ESCAPES.update({c: "\ufffd" for c in range(0xD800, 0xE000)})
_TABLE = str.maketrans(_ESCAPES)
# Most values need no escaping at all; one regex scan is cheaper than a translate.
_NEEDS_ESCAPE = re.compile("[\x00-\x1f^~_\\\\\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def zpl_field(value: Any) -> str:
    """A value as safe ZPL field data (for use after `^FH`)."""
    if value is None:
        return ""
    kind = type(value)
    text = value if kind is str else str(value) if kind is int else text_of(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS]
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return text.translate(_TABLE)


def code128_data(value: Any) -> str:
    """A value for a `^BC` field: `>` starts a Code 128 invocation code, so a literal one is `>0`.

    Zebra's table of invocation codes (ZPL II Programming Guide, `^BC`): `><` is the value 62
    (`^` in subset B), `>0` the value 30 (`>`), `>=` the value 94 (`~`).
    """
    if value is None:
        return ""
    return text_of(value).replace(">", ">0")
