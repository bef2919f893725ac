"""Carrier labels as pictures: PDF and PNG read within bounds, fitted to a label, sent as dots.

Reading is bounded before anything is decoded or drawn: a PDF has 1 to `MAX_PAGES` pages of at
most `MAX_PAGE_INCHES`, each with at most `MAX_PAGE_OBJECTS` things to draw (forms counted each
time they are used) and no image over `MAX_PIXELS`; a PNG's size is read from its header before
Pillow inflates a byte. Every refusal is an `InputError` whose message says what to send instead.

A page is fitted to the printer's label at the printer's resolution: drawn at its true size
(`dpi / 72` dots a point) when it fits, shrunk when it does not, never enlarged (a carrier's
barcode is specified in inches, and a bigger one may not scan in its sorter); a landscape page
goes onto a portrait label turned a quarter clockwise when that leaves it bigger. A PNG has no
true size unless it says its resolution, so it is scaled to fill the label. The greyscale picture
is then cut at mid-grey into printed and blank dots: no dithering, which would fray bar edges.

The bitmaps here are mode "1" images whose set bits are the printed dots (Pillow shows them white:
the opposite of a picture), because ZPL's `^GF` and ESC/POS `GS v 0` both send a set bit as a
printed dot, and this way a bitmap's `tobytes()` is already the printer's row data.

PDFium is not thread-safe: every use of it is inside `pdf_pages`, under one lock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import io
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]
from PIL import Image

from dockside.errors import InputError

__all__ = [
    "MAX_PAGES",
    "MAX_PAGE_INCHES",
    "MAX_PAGE_OBJECTS",
    "MAX_PIXELS",
    "PdfPage",
    "Placement",
    "escpos_raster",
    "fitted_image",
    "open_png",
    "pdf_page_inches",
    "pdf_pages",
    "place",
    "png_dpi",
    "png_unreadable",
    "rendered_page",
    "zpl_graphic_label",
]

MAX_PAGES = 4
MAX_PAGE_INCHES = (8.5, 14.0)  # US legal, either way up: the largest sheet a label comes on
# Pixels of one PNG, one image inside a PDF page, or one label: 40 Mpx is a 4x6 label at 1,000 dpi
# or a legal page at 600, and ~40 MB of greyscale while it is fitted.
MAX_PIXELS = 40_000_000
# Paths, text runs and images a page draws. A carrier label drawn in vectors has a few thousand
# (a 2D code is one square a module); this bounds the work of drawing a page built to be slow.
MAX_PAGE_OBJECTS = 100_000
POINTS_PER_INCH = 72
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EOF_WINDOW = 1024  # readers look for %%EOF this far from the end (Acrobat's tolerance)
_PDFIUM_LOCK = threading.Lock()
# Darker than mid-grey prints. A set bit is a printed dot (see the module docstring).
_PRINTED = [255 if value < 128 else 0 for value in range(256)]
# Rows per GS v 0 command: python-escpos's default fragment, which common printers' buffers take.
ESCPOS_BAND_ROWS = 960
# GS V 66 0: feed to the cutter and cut partly, so pages of one label stay apart.
ESCPOS_CUT = b"\x1dVB\x00"

T = TypeVar("T")


def _refuse(code: str, message: str) -> InputError:
    return InputError(message, code=code)


# ---------------------------------------------------------------------------------------- PDF


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page of a PDF label, checked: its number, size and whether it draws any image."""

    number: int
    page: Any  # pypdfium2.PdfPage, open while the visitor runs
    width_pt: float
    height_pt: float
    has_images: bool


def pdf_page_inches(data: bytes) -> list[tuple[float, float]]:
    """Each page's width and height in inches, once the document and its page list pass the checks.

    No page is loaded: PDFium parses a page's drawing whole when it loads it, and a page built to
    be slow (forms drawn within forms, a small stream that inflates to millions of paths) would
    take its time there. This is the check the cloud makes at ingest, for every tenant.
    """
    with _open_pdf(data) as pdf:
        return [
            (round(width / POINTS_PER_INCH, 3), round(height / POINTS_PER_INCH, 3))
            for width, height in _page_sizes(pdf)
        ]


def pdf_pages(data: bytes, visit: Callable[[PdfPage], T]) -> list[T]:
    """`visit` applied to each page of the PDF label, in order, once the page has passed its checks.

    The document is opened once and every check made before `visit` sees a page, the page's
    objects counted and its images' sizes read after PDFium has loaded it; `visit` runs under the
    PDFium lock and must not keep the page.
    """
    with _open_pdf(data) as pdf:
        results = []
        for number, (width, height) in enumerate(_page_sizes(pdf), 1):
            page = pdf[number - 1]
            try:
                has_images = _scan_objects(page, number)
                results.append(visit(PdfPage(number, page, width, height, has_images)))
            finally:
                page.close()
        return results


@contextlib.contextmanager
def _open_pdf(data: bytes) -> Iterator[Any]:
    """The PDF opened by PDFium, under the lock, closed after; refused if it is no readable PDF."""
    if not data.startswith(b"%PDF-"):
        hint = " (it looks like a PNG: send it with format png)" if data.startswith(PNG_SIGNATURE) else ""
        if data.lstrip()[:3].upper() == b"^XA":
            hint = " (it looks like ZPL: send it with format zpl)"
        raise _refuse(
            "label_not_pdf",
            f"the label is not a PDF: a PDF file starts with %PDF-{hint}; send the carrier's PDF file "
            f"itself, base64-encoded",
        )
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise _refuse(
            "label_pdf_truncated",
            "the PDF label does not end with %%EOF: it was cut short on the way; send the whole file",
        )
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise _refuse(
                    "label_pdf_encrypted", "the PDF label is password-protected: send it without a password"
                ) from None
            raise _refuse(
                "label_pdf_unreadable",
                f"the PDF label cannot be read ({exc}): send the carrier's PDF file as it was downloaded",
            ) from None
        try:
            yield pdf
        finally:
            pdf.close()


def _page_sizes(pdf: Any) -> list[tuple[float, float]]:
    """Each page's width and height in points, refused past the page count or size bounds."""
    count = len(pdf)
    if count == 0:
        raise _refuse(
            "label_pdf_unreadable", "the PDF label has no pages: send a PDF with the label on page 1"
        )
    if count > MAX_PAGES:
        raise _refuse(
            "label_too_many_pages",
            f"the PDF label has {count:,} pages; a carrier label is 1 to {MAX_PAGES} pages, one label "
            f"each: send each parcel's own label, not a batch or a manifest",
        )
    sizes = []
    short, long = MAX_PAGE_INCHES
    for index in range(count):
        width, height = pdf.get_page_size(index)
        width_in, height_in = width / POINTS_PER_INCH, height / POINTS_PER_INCH
        if not (width_in >= 0.25 and height_in >= 0.25):  # also refuses NaN
            raise _refuse(
                "label_page_too_small",
                f"page {index + 1} of the PDF label is {width_in:.2f} x {height_in:.2f} in: send the "
                f"label at its own size",
            )
        if min(width_in, height_in) > short or max(width_in, height_in) > long:
            raise _refuse(
                "label_page_too_large",
                f"page {index + 1} of the PDF label is {width_in:,.1f} x {height_in:,.1f} in, larger than "
                f"{short} x {long} in: send the label at its own size (4 x 6 in for most carriers)",
            )
        sizes.append((width, height))
    return sizes


def _scan_objects(page: Any, number: int) -> bool:
    """Whether the page draws an image; refuses too many objects, or an image too big to decode.

    PDFium decodes an image whole, whatever size it is drawn at. Objects are walked through the
    raw API (pypdfium2's wrapper objects cost ~10 us each), forms as often as they are drawn.
    """
    width, height = ctypes.c_uint(), ctypes.c_uint()
    budget = MAX_PAGE_OBJECTS
    has_images = False
    pending: list[tuple[Any, bool]] = [(page.raw, False)]
    while pending:
        parent, is_form = pending.pop()
        count = (pdfium_c.FPDFFormObj_CountObjects if is_form else pdfium_c.FPDFPage_CountObjects)(parent)
        get = pdfium_c.FPDFFormObj_GetObject if is_form else pdfium_c.FPDFPage_GetObject
        budget -= max(0, count)
        if budget < 0:
            raise _refuse(
                "label_pdf_too_complex",
                f"page {number} of the PDF label draws more than {MAX_PAGE_OBJECTS:,} objects: send the "
                f"label as the carrier made it (a 4 x 6 in label draws a few thousand)",
            )
        for index in range(count):
            item = get(parent, index)
            kind = pdfium_c.FPDFPageObj_GetType(item)
            if kind == pdfium_c.FPDF_PAGEOBJ_FORM:
                pending.append((item, True))
            elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                has_images = True
                if not pdfium_c.FPDFImageObj_GetImagePixelSize(
                    item, ctypes.byref(width), ctypes.byref(height)
                ):
                    continue  # PDFium cannot read it either, and draws nothing for it
                if width.value * height.value > MAX_PIXELS:
                    raise _refuse(
                        "label_pdf_too_large",
                        f"page {number} of the PDF label holds a {width.value:,} x {height.value:,}-pixel "
                        f"image, more than {MAX_PIXELS:,} pixels: send the label with its images at print "
                        f"resolution",
                    )
    return has_images


# ---------------------------------------------------------------------------------------- PNG


def open_png(data: bytes) -> Image.Image:
    """The PNG opened by Pillow (header only), its size bounded before any pixel is inflated."""
    if not data.startswith(PNG_SIGNATURE):
        hint = " (it looks like a PDF: send it with format pdf)" if data.startswith(b"%PDF-") else ""
        raise _refuse(
            "label_not_png",
            f"the label is not a PNG image: a PNG starts with the bytes 89 50 4E 47{hint}; send the "
            f"carrier's PNG file itself, base64-encoded",
        )
    # The size is in the IHDR chunk, which must come first (PNG spec 5.6); read here so that even
    # Pillow's own decompression-bomb warning (at 89 Mpx) is never reached.
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _refuse("label_png_unreadable", "the PNG label has no header chunk: send the whole PNG file")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width * height > MAX_PIXELS:
        raise _refuse(
            "label_png_too_large",
            f"the PNG label is {width:,} x {height:,} pixels, more than {MAX_PIXELS:,}: send it at the "
            f"printer's resolution (a 4 x 6 in label at 203 dpi is 812 x 1218)",
        )
    try:
        return Image.open(io.BytesIO(data), formats=["PNG"])
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _refuse("label_png_unreadable", png_unreadable(exc)) from None


def png_unreadable(exc: BaseException) -> str:
    """The message for a PNG Pillow cannot decode."""
    return f"the PNG label cannot be decoded ({exc}): send the carrier's PNG file as it was downloaded"


def png_dpi(image: Image.Image) -> float | None:
    """The resolution the PNG says it has, if plausible for a label (many tools write 72 or 96)."""
    dpi = image.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        try:
            value = float(dpi[0])
        except (TypeError, ValueError):
            return None
        if 50 <= value <= 2_400:
            return value
    return None


# ------------------------------------------------------------------------------ fitting and dots


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


def rendered_page(page: PdfPage, *, dpi: int, width_dots: int, height_dots: int) -> Image.Image:
    """A checked PDF page drawn by PDFium as printed dots, fitted to the label (inside `pdf_pages`)."""
    placement = place(
        page.width_pt,
        page.height_pt,
        native=dpi / POINTS_PER_INCH,
        width_dots=width_dots,
        height_dots=height_dots,
    )
    # PDFium draws images into a greyscale bitmap two to three times slower than into colour (and
    # vector art the other way round): a page with images is drawn in colour, then made grey.
    # pypdfium2 sizes the bitmap with ceil(), so 288 pt x 300/72 can come out 1,201 dots from
    # rounding error: a billionth less scale keeps it at 1,200 (and spares the crop).
    bitmap = page.page.render(
        scale=placement.scale * (1 - 1e-9),
        rotation=90 if placement.turned else 0,
        grayscale=not page.has_images,
    )
    try:
        picture = bitmap.to_pil()
    finally:
        bitmap.close()
    return _printed_dots(picture.convert("L"), width_dots, height_dots)


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
    text, 4 hex digits>`; both byte counts are of the uncompressed rows, as Zebra's own tools
    write them (the printer checks the total against what it inflates).
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
