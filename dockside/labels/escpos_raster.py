"""Drawing an ESC/POS slip as the printer would print it, from its resolved operations.

The slip is drawn from the operation list (not by emulating the byte stream): font A is 12 x 24
dots, size multipliers scale it the way the printer scales its bitmap font, lines wrap at the paper
width, barcodes and QR codes are drawn from the same data the printer gets, and text shows exactly
what the code page can print ('?' for characters it lacks).
"""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw, ImageFont

from dockside.labels.barcode_modules import code128_b_modules, qr_modules
from dockside.labels.escpos_ops import (
    FONT_A_DOTS,
    BarcodeOp,
    CutOp,
    EscposOp,
    FeedOp,
    ImageOp,
    PrinterSetup,
    QrOp,
    TextOp,
)

__all__ = ["characters_not_printable", "draw_slip", "op_height", "slip_height"]

CHAR_HEIGHT = 24
LINE_DOTS = 30  # the default line feed: 1/6 inch
CUT_FEED_LINES = 6

Resolved = list[tuple[EscposOp, list[str]]]


@functools.lru_cache(maxsize=4)
def _font(bold: bool) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A monospaced font close to the printer's font A (DejaVu Sans Mono), else Pillow's own."""
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    try:
        return ImageFont.truetype(name, 20)
    except OSError:
        return ImageFont.load_default(20)


def _rows(op: TextOp, values: list[str], setup: PrinterSetup) -> list[str]:
    shown = setup.shown(op.line(values, setup))
    per_row = max(1, setup.columns // op.width)
    return [shown[i : i + per_row] for i in range(0, len(shown), per_row)] or [""]


def _qr_matrix(op: QrOp, values: list[str]) -> list[list[bool]]:
    return qr_modules(op.data(values[0]), op.error_correction)


def _barcode_modules(op: BarcodeOp, values: list[str]) -> str:
    data = op.data(values[0]).replace("{{", "{")
    return code128_b_modules(data) if data else ""


def op_height(op: EscposOp, values: list[str], setup: PrinterSetup) -> int:
    """How many dots of paper one resolved operation uses."""
    if isinstance(op, TextOp):
        return len(_rows(op, values, setup)) * (CHAR_HEIGHT * op.height + LINE_DOTS - CHAR_HEIGHT)
    if isinstance(op, BarcodeOp):
        if not op.data(values[0]):
            return 0
        text_rows = {"BELOW": 1, "ABOVE": 1, "BOTH": 2}.get(op.text_position, 0)
        return op.height + text_rows * LINE_DOTS + LINE_DOTS - CHAR_HEIGHT
    if isinstance(op, QrOp):
        return len(_qr_matrix(op, values)) * op.size + LINE_DOTS if op.data(values[0]) else 0
    if isinstance(op, ImageOp):
        return op.image.height + LINE_DOTS
    if isinstance(op, FeedOp):
        return op.lines * LINE_DOTS
    if isinstance(op, CutOp):
        return CUT_FEED_LINES * LINE_DOTS + 4
    return 0


def slip_height(resolved: Resolved, setup: PrinterSetup) -> int:
    """The slip's printed length in dots."""
    return sum(op_height(op, values, setup) for op, values in resolved)


def _aligned(op: EscposOp, content_width: int, paper_width: int) -> int:
    if op.align == "center":
        return max(0, (paper_width - content_width) // 2)
    if op.align == "right":
        return max(0, paper_width - content_width)
    return 0


def _draw_text(canvas: Image.Image, op: TextOp, values: list[str], setup: PrinterSetup, top: int) -> None:
    row_height = CHAR_HEIGHT * op.height + LINE_DOTS - CHAR_HEIGHT
    font = _font(op.bold)
    for index, row in enumerate(_rows(op, values, setup)):
        if not row.strip():
            continue
        # Draw at normal size, then scale by whole multiples as the printer scales its bitmap font.
        strip = Image.new("L", (len(row) * FONT_A_DOTS, CHAR_HEIGHT), 255)
        pen = ImageDraw.Draw(strip)
        for column, char in enumerate(row):
            pen.text((column * FONT_A_DOTS, 1), char, font=font, fill=0)
        if op.underline:
            pen.line([(0, CHAR_HEIGHT - 2), (strip.width, CHAR_HEIGHT - 2)], fill=0, width=2)
        if op.width != 1 or op.height != 1:
            strip = strip.resize((strip.width * op.width, CHAR_HEIGHT * op.height), Image.Resampling.NEAREST)
        canvas.paste(strip, (_aligned(op, strip.width, canvas.width), top + index * row_height))


def _draw_barcode(canvas: Image.Image, op: BarcodeOp, values: list[str], top: int) -> None:
    modules = _barcode_modules(op, values)
    if not modules:
        return
    width = len(modules) * op.module
    left = _aligned(op, width, canvas.width)
    pen = ImageDraw.Draw(canvas)
    bars_top = top + (LINE_DOTS if op.text_position in ("ABOVE", "BOTH") else 0)
    for index, module in enumerate(modules):
        if module == "1":
            x = left + index * op.module
            pen.rectangle([x, bars_top, x + op.module - 1, bars_top + op.height - 1], fill=0)
    text = op.data(values[0]).replace("{{", "{")
    text_left = _aligned(op, len(text) * FONT_A_DOTS, canvas.width)
    if op.text_position in ("ABOVE", "BOTH"):
        pen.text((text_left, top + 2), text, font=_font(False), fill=0)
    if op.text_position in ("BELOW", "BOTH"):
        pen.text((text_left, bars_top + op.height + 4), text, font=_font(False), fill=0)


def _draw_qr(canvas: Image.Image, op: QrOp, values: list[str], top: int) -> None:
    if not op.data(values[0]):
        return
    matrix = _qr_matrix(op, values)
    left = _aligned(op, len(matrix) * op.size, canvas.width)
    pen = ImageDraw.Draw(canvas)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                x0, y0 = left + x * op.size, top + y * op.size
                pen.rectangle([x0, y0, x0 + op.size - 1, y0 + op.size - 1], fill=0)


def _draw_cut(canvas: Image.Image, top: int) -> None:
    pen = ImageDraw.Draw(canvas)
    y = top + CUT_FEED_LINES * LINE_DOTS + 1
    for x in range(0, canvas.width, 16):
        pen.line([(x, y), (x + 8, y)], fill=0, width=2)


def draw_slip(resolved: Resolved, setup: PrinterSetup) -> Image.Image:
    """The slip as a greyscale image, `setup.width_dots` wide and as long as it prints."""
    height = max(1, slip_height(resolved, setup))
    canvas = Image.new("L", (setup.width_dots, height), 255)
    top = 0
    for op, values in resolved:
        if isinstance(op, TextOp):
            _draw_text(canvas, op, values, setup, top)
        elif isinstance(op, BarcodeOp):
            _draw_barcode(canvas, op, values, top)
        elif isinstance(op, QrOp):
            _draw_qr(canvas, op, values, top)
        elif isinstance(op, ImageOp):
            canvas.paste(op.image.convert("L"), (_aligned(op, op.image.width, canvas.width), top))
        elif isinstance(op, CutOp):
            _draw_cut(canvas, top)
        top += op_height(op, values, setup)
    return canvas


def characters_not_printable(resolved: Resolved, setup: PrinterSetup) -> list[str]:
    """The distinct characters of the slip's text that the code page cannot print."""
    missing: dict[str, None] = {}
    for op, values in resolved:
        if isinstance(op, TextOp):
            for char in op.line(values, setup):
                if not char.isspace() and char.encode(setup.codec, "replace") == b"?" and char != "?":
                    missing[char] = None
    return list(missing)
