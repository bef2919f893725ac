"""Carrier labels as printer bitmaps: PDF pages and PNG images fitted to a label, and their bytes.

A page is fitted to the printer's label at the printer's resolution: drawn at its true size
(`dpi / 72` dots a point) when it fits, shrunk when it does not, never enlarged (a carrier's
barcode is specified in inches, and a bigger one may not scan in its sorter); a landscape page
goes onto a portrait label turned a quarter clockwise when that leaves it bigger. A PNG has no
true size unless it says its resolution, so it is scaled to fill the label. The greyscale picture
is then cut at mid-grey into printed and blank dots: no dithering, which would fray bar edges.

The bitmaps here are mode "1" images whose set bits are the printed dots (Pillow shows them white:
the opposite of a picture), because ZPL's `^GF` and ESC/POS `GS v 0` both send a set bit as a
printed dot, and this way a bitmap's `tobytes()` is already the printer's row data.

PDFium is not thread-safe: every use of it holds `PDFIUM_LOCK`.
"""

from __future__ import annotations

import base64
import binascii
import threading
import zlib
from dataclasses import dataclass

import pypdfium2 as pdfium  # type: ignore[import-untyped]
from PIL import Image

__all__ = [
    "PDFIUM_LOCK",
    "Placement",
    "escpos_raster",
    "fitted_image",
    "place",
    "rendered_page",
    "zpl_graphic_label",
]

PDFIUM_LOCK = threading.Lock()
POINTS_PER_INCH = 72
# Darker than mid-grey prints. A set bit is a printed dot (see the module docstring).
_PRINTED = [255 if value < 128 else 0 for value in range(256)]
# Rows per GS v 0 command: python-escpos's default fragment, which common printers' buffers take.
ESCPOS_BAND_ROWS = 960
# GS V 66 0: feed to the cutter and cut partly, so pages of one label stay apart.
ESCPOS_CUT = b"\x1dVB\x00"


@dataclass(frozen=True, slots=True)
class Placement:
    """How a page goes onto the label: its scale (dots per page unit) and quarter turns clockwise."""

    scale: float
    turned: bool

    def size(self, width: float, height: float) -> tuple[int, int]:
        """The drawn size in dots of a `width` x `height` page (in page units)."""
        if self.turned:
            width, height = height, width
        return max(1, round(width * self.scale)), max(1, round(height * self.scale))


def place(
    width: float, height: float, *, native: float | None, width_dots: int, height_dots: int
) -> Placement:
    """The largest placement of a `width` x `height` page on the label, at most `native` scale.

    `native` is the scale at which the page has its true size (None: unknown, fill the label).
    The page is turned when that lets it be drawn bigger.
    """
    upright = min(width_dots / width, height_dots / height)
    turned = min(width_dots / height, height_dots / width)
    if native is not None:
        upright, turned = min(native, upright), min(native, turned)
    # A hair of tolerance: a square page, or one that fits at full size both ways, stays upright.
    if turned > upright * 1.000_001:
        return Placement(turned, True)
    return Placement(upright, False)


def _printed_dots(grey: Image.Image, width_dots: int, height_dots: int) -> Image.Image:
    """The printed dots of a greyscale picture, cropped to the label if rounding overran it by a dot."""
    dots = grey.point(_PRINTED, "1")
    if dots.width > width_dots or dots.height > height_dots:
        dots = dots.crop((0, 0, min(dots.width, width_dots), min(dots.height, height_dots)))
    return dots


def rendered_page(
    page: pdfium.PdfPage, placement: Placement, *, width_dots: int, height_dots: int
) -> Image.Image:
    """A PDF page drawn by PDFium as printed dots; the caller holds `PDFIUM_LOCK`."""
    bitmap = page.render(scale=placement.scale, rotation=90 if placement.turned else 0, grayscale=True)
    try:
        grey = bitmap.to_pil()
        return _printed_dots(grey, width_dots, height_dots)
    finally:
        bitmap.close()


def fitted_image(
    image: Image.Image, placement: Placement, *, width_dots: int, height_dots: int
) -> Image.Image:
    """A decoded image (any mode) as printed dots, transparent parts blank, scaled and turned."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        grey = Image.alpha_composite(white, rgba).convert("L")
    else:
        grey = image.convert("L")
    if placement.turned:
        grey = grey.transpose(Image.Transpose.ROTATE_270)  # a quarter turn clockwise, as PDFium turns
    size = placement.size(image.width, image.height)
    if size != grey.size:
        # Averaging when shrinking and interpolating when enlarging put bar edges where they fall
        # at the new scale; the cut at mid-grey then rounds each edge to the nearest dot.
        shrinking = size[0] < grey.width
        grey = grey.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return _printed_dots(grey, width_dots, height_dots)


def zpl_graphic_label(dots: Image.Image, *, width_dots: int, height_dots: int) -> bytes:
    """One ZPL label format printing `dots` centred on the label, as a Z64-compressed `^GFA`.

    Z64 is the ZPL II graphic encoding `:Z64:<base64 of zlib data>:<CRC-16/XMODEM of the base64
    text, 4 hex digits>`; the byte counts are of the uncompressed rows (the printer checks the
    total against what it inflates).
    """
    rows = dots.tobytes()
    row_bytes = (dots.width + 7) // 8
    total = len(rows)
    encoded = base64.b64encode(zlib.compress(rows, 6))
    crc = binascii.crc_hqx(encoded, 0)
    left = (width_dots - dots.width) // 2
    top = (height_dots - dots.height) // 2
    return b"".join(
        (
            f"^XA^PW{width_dots}^LL{height_dots}^LH0,0^FO{left},{top}".encode("ascii"),
            f"^GFA,{total},{total},{row_bytes},:Z64:".encode("ascii"),
            encoded,
            f":{crc:04X}^FS^XZ\n".encode("ascii"),
        )
    )


def escpos_raster(dots: Image.Image, *, width_dots: int) -> bytes:
    """`dots` centred on `width_dots`-wide paper as ESC/POS `GS v 0` raster bands, then a cut."""
    if dots.width < width_dots:
        paper = Image.new("1", (width_dots, dots.height), 0)
        paper.paste(dots, ((width_dots - dots.width) // 2, 0))
        dots = paper
    row_bytes = (dots.width + 7) // 8
    rows = dots.tobytes()
    out = bytearray()
    for top in range(0, dots.height, ESCPOS_BAND_ROWS):
        count = min(ESCPOS_BAND_ROWS, dots.height - top)
        # GS v 0 m xL xH yL yH: m = 0 (normal size), x in bytes a row, y in rows.
        out += b"\x1dv0\x00" + row_bytes.to_bytes(2, "little") + count.to_bytes(2, "little")
        out += rows[top * row_bytes : (top + count) * row_bytes]
    out += ESCPOS_CUT
    return bytes(out)
