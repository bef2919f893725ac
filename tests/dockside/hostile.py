"""Hostile order data and a printer-side reader of ESC/POS byte streams, shared by the label tests."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

# One entry per kind of attack or accident the issue names.
HOSTILE: dict[str, str] = {
    "zpl_injection": "^XZ^XA^FO0,0^FDPWNED^FS",
    "printer_reset": "~JR",
    "host_status": "~HS",
    "newlines_and_tabs": "line one\nline two\r\n\tindented\tagain",
    "ten_kb": ("x^~_\\&" * 2000)[:10_240],
    "emoji": "📦🚚 Zoë 👩‍👩‍👧 ok",
    "cjk": "東京都千代田区丸の内1-1",
    "right_to_left": "שלום עולם مرحبا بالعالم",
    "control_bytes": "A\x00B\x01C\x1bD\x7fE\x85F\u2028G\ud800H\x1d\x1e\x1f",
    "escape_underscore": "_5E_7E__XZ",
}

TOKEN = "CLEANTOKEN"


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths of every string leaf in a sample that is not a number written as text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))
    elif isinstance(value, str) and not value.replace(".", "", 1).isdigit():
        yield path


def with_value(sample: dict[str, Any], path: tuple[Any, ...], value: str) -> dict[str, Any]:
    """A deep copy of `sample` with `value` at `path`, keeping `ship_to`/`order.ship_to` and
    `lines`/`order.lines` the same object, as `label_context` does."""
    data = copy.deepcopy(sample)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    data["order"]["ship_to"] = data["ship_to"] if path[0] == "ship_to" else data["order"]["ship_to"]
    if path[0] == "order" and len(path) > 1 and path[1] == "ship_to":
        data["ship_to"] = data["order"]["ship_to"]
    if path[0] == "lines":
        data["order"]["lines"] = data["lines"]
    if path[0] == "order" and len(path) > 1 and path[1] == "lines":
        data["lines"] = data["order"]["lines"]
    return data


class EscposStreamError(AssertionError):
    """A byte the printer would not read as text or as a known command."""


def read_escpos(data: bytes) -> list[tuple[str, bytes]]:
    """Split an ESC/POS stream as a printer does: ("text", bytes) runs and (command, parameters).

    Commands are named like "ESC a" or "GS ( k"; variable-length payloads (barcode, QR, raster
    image) are consumed by their own length fields. Any other control byte is an error.
    """
    items: list[tuple[str, bytes]] = []
    i = 0
    text = bytearray()

    def flush() -> None:
        if text:
            items.append(("text", bytes(text)))
            text.clear()

    def need(count: int) -> bytes:
        if i + count > len(data):
            raise EscposStreamError(f"stream ends inside a command at byte {i}")
        return data[i : i + count]

    while i < len(data):
        byte = data[i]
        if byte >= 0x20 and byte != 0x7F:
            text.append(byte)
            i += 1
            continue
        flush()
        if byte == 0x0A:
            items.append(("LF", b""))
            i += 1
        elif byte == 0x1B:
            code = chr(need(2)[1])
            i += 2
            if code == "@" or code == "2":
                items.append((f"ESC {code}", b""))
            elif code in "tE-ad!3MGV{":
                items.append((f"ESC {code}", need(1)))
                i += 1
            else:
                raise EscposStreamError(f"unknown ESC {code!r} at byte {i - 2}")
        elif byte == 0x1D:
            code = chr(need(2)[1])
            i += 2
            if code in "!hwfHB":
                items.append((f"GS {code}", need(1)))
                i += 1
            elif code == "V":
                mode = need(1)[0]
                size = 2 if mode in (65, 66) else 1
                items.append(("GS V", need(size)))
                i += size
            elif code == "k":
                kind = need(1)[0]
                if kind <= 6:
                    end = data.index(0, i + 1)
                    items.append(("GS k", data[i : end + 1]))
                    i = end + 1
                else:
                    length = need(2)[1]
                    items.append(("GS k", need(2 + length)))
                    i += 2 + length
            elif code == "(":
                head = need(3)
                length = head[1] + head[2] * 256
                items.append((f"GS ( {chr(head[0])}", need(3 + length)))
                i += 3 + length
            elif code == "v":
                head = need(6)
                size = (head[2] + head[3] * 256) * (head[4] + head[5] * 256)
                items.append(("GS v", need(6 + size)))
                i += 6 + size
            else:
                raise EscposStreamError(f"unknown GS {code!r} at byte {i - 2}")
        else:
            raise EscposStreamError(f"control byte 0x{byte:02X} at byte {i} is no command")
    flush()
    return items


def skeleton(items: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The commands of a stream without text and without the data of barcodes and QR codes."""
    shape = []
    for name, params in items:
        if name == "text":
            continue
        if name == "GS k":
            params = params[:1]
        elif name == "GS ( k":
            params = params[3:5]
        shape.append((name, params))
    return shape
