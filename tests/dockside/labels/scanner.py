"""Reading labels the way a carrier's scanner does: render ZPL with the project's renderer, decode with zbar.

zbar (through pyzbar) is the independent check: it knows nothing of Dockside's encoder. It drops
the FNC1 that follows a GS1-128 start and says so with its GS1 modifier, which pyzbar does not
expose; `scan` reads it from the symbol itself (`zbar_symbol_get_modifiers`, bit 0 = GS1).
"""

from __future__ import annotations

from collections.abc import Iterator
from ctypes import POINTER, c_uint
from dataclasses import dataclass
from typing import Any

import pyzbar.pyzbar as pyzbar  # type: ignore[import-untyped]
from PIL import Image
from pyzbar.wrapper import zbar_function, zbar_symbol  # type: ignore[import-untyped]

from dockside.labels import compile_template, load_shipped_template
from dockside.labels.zpl_fields import ZplField, ZplLabel, read_labels
from dockside.labels.zpl_raster import draw_label

_modifiers = zbar_function("zbar_symbol_get_modifiers", c_uint, POINTER(zbar_symbol))
_GS1 = 1  # ZBAR_MOD_GS1


@dataclass(frozen=True, slots=True)
class Scan:
    """One symbol zbar found: its data, its kind, and whether it is GS1 (FNC1 after the start)."""

    data: str
    kind: str
    gs1: bool


def scan(
    image: Image.Image, kinds: tuple[pyzbar.ZBarSymbol, ...] = (pyzbar.ZBarSymbol.CODE128,)
) -> list[Scan]:
    """Every symbol of `kinds` zbar reads in `image`."""
    found: list[Scan] = []
    original = pyzbar._decode_symbols

    def reading(symbols: Any) -> Iterator[Any]:
        for symbol in symbols:
            gs1 = bool(_modifiers(symbol) & _GS1)
            for decoded in original([symbol]):
                found.append(Scan(decoded.data.decode("latin-1"), decoded.type, gs1))
                yield decoded

    pyzbar._decode_symbols = reading
    try:
        pyzbar.decode(image, symbols=list(kinds))
    finally:
        pyzbar._decode_symbols = original
    return found


def render_shipped(name: str, data: dict[str, Any]) -> list[tuple[ZplLabel, Image.Image]]:
    """A shipped ZPL template rendered with `data` and drawn by `zpl_raster`, one image a label."""
    shipped = load_shipped_template(name)
    zpl = compile_template(shipped.language, shipped.source).render(data)
    labels = read_labels(zpl, width_dots=shipped.width_dots, height_dots=shipped.height_dots)
    return [(label, draw_label(label)[0]) for label in labels]


def linear_barcodes(label: ZplLabel) -> list[ZplField]:
    """The Code 128 fields of a label, top to bottom."""
    return sorted(
        (field for field in label.fields if field.barcode is not None and field.barcode.kind == "code128"),
        key=lambda field: field.y,
    )


@dataclass(frozen=True, slots=True)
class Band:
    """Where a linear barcode's bars are in the image, found from the pixels alone."""

    left: int
    right: int
    image_width: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    def quiet(self) -> tuple[int, int]:
        """White dots left of the first bar and right of the last, up to the label's edge."""
        return self.left, self.image_width - 1 - self.right


def bars(image: Image.Image, field: ZplField) -> tuple[Band, Image.Image]:
    """The ink across the rows of a barcode field's bars, and those rows cut out (with white margins)."""
    assert field.barcode is not None
    top, bottom = field.y, field.y + field.barcode.height
    strip = image.crop((0, top, image.width, bottom))
    ink = strip.point(lambda value: 255 if value < 128 else 0).getbbox()
    assert ink is not None, f"no bars drawn for the field on line {field.line}"
    padded = Image.new("L", (image.width, strip.height + 20), 255)
    padded.paste(strip, (0, 10))
    return Band(ink[0], ink[2] - 1, image.width), padded
