"""Drawing a ZPL label the way a 203/300-dpi thermal printer would, for the subset templates may use.

Fields come from `zpl_fields.read_labels`. Text in any font is drawn with a condensed bold
scalable face standing in for Zebra's font 0 (DejaVu Sans Condensed Bold when the system has it,
Pillow's own font otherwise); Code 128 bars are the symbol a Zebra prints for the field data and
its invocation codes (`barcode_modules.zebra_code128`, GS1-128 with `>8` included), Code 39 bars
come from python-barcode and QR codes from qrcode, at the module sizes the label asks for; boxes,
circles, `^FB` wrapping and justification, `^FR` reversal, rotation, `^LR` and `^PO` are honoured.

What a preview cannot promise is said in its notes: characters the preview font lacks (they show
as boxes), and anything it drew only approximately.
"""

from __future__ import annotations

import functools
import re

from PIL import Image, ImageDraw, ImageFont, ImageOps

from dockside.labels.barcode_modules import code39_modules, qr_modules, zebra_code128
from dockside.labels.zpl_fields import Font, ZplField, ZplLabel

__all__ = ["draw_label", "preview_font_has"]

_ROTATION = {"N": 0, "R": 270, "I": 180, "B": 90}
# Zebra's font 0 is a condensed face; a regular condensed bold at the same height runs wider.
_WIDTH_FACTOR = 0.78
_QR_TOP_OFFSET = 10
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

FontFace = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=64)
def _face(size: int) -> FontFace:
    for name in ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


@functools.lru_cache(maxsize=1)
def _notdef() -> bytes:
    face = _face(40)
    return bytes(face.getmask("\U0010fffd"))


@functools.lru_cache(maxsize=4096)
def preview_font_has(char: str) -> bool:
    """Whether the preview font draws `char` (else it shows as a box and the preview says so)."""
    if char.isascii() or char.isspace():
        return True
    mask = _face(40).getmask(char)
    return bytes(mask) != _notdef() or (mask.size == (0, 0) and not char.isprintable())


class _Notes:
    def __init__(self) -> None:
        self.missing: dict[str, None] = {}
        self.approximate: dict[str, None] = {}

    def text(self, text: str) -> None:
        for char in text:
            if not preview_font_has(char):
                self.missing[char] = None

    def lines(self) -> list[str]:
        notes = []
        if self.missing:
            shown = "".join(list(self.missing)[:12])
            notes.append(
                f"{len(self.missing)} character(s) are not in the preview font and show as boxes ({shown}); "
                "check that the printer has a font with them "
                "(Zebra's built-in font 0 covers Latin, Greek and Cyrillic only)"
            )
        notes.extend(self.approximate)
        return notes


def _text_image(text: str, font: Font, notes: _Notes) -> Image.Image:
    """One line of text as a mask (255 = ink), scaled to the font's height and width."""
    height = max(font.height, 4)
    face = _face(height)
    if _CONTROL.search(text):
        # Text layout engines refuse control characters; a printer prints nothing for them.
        text = _CONTROL.sub(" ", text)
        notes.approximate["control characters in field data are shown as spaces"] = None
    notes.text(text)
    left, _, right, _ = face.getbbox(text or " ", anchor="ls")
    ascent = round(height * 0.8)
    image = Image.new("L", (max(1, round(right - min(left, 0)) + 2), height), 0)
    ImageDraw.Draw(image).text((-min(left, 0), ascent), text, font=face, fill=255, anchor="ls")
    ratio = (font.width / height if font.width else 1.0) * _WIDTH_FACTOR
    width = max(1, round(image.width * ratio))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _wrap(text: str, field: ZplField, notes: _Notes) -> list[Image.Image]:
    """The lines of a `^FB` block, wrapped at word boundaries to the block width."""
    assert field.block is not None
    lines: list[Image.Image] = []
    for paragraph in text.split("\\&"):
        current = ""
        for word in paragraph.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and _text_image(candidate, field.font, notes).width > field.block.width:
                lines.append(_text_image(current, field.font, notes))
                current = word
            else:
                current = candidate
        lines.append(_text_image(current, field.font, notes))
    return lines


def _draw_text_field(field: ZplField, notes: _Notes) -> tuple[Image.Image, int, int]:
    text = field.text
    if field.block is None:
        mask = _text_image(text, field.font, notes)
        if field.typeset:
            return mask, field.x, field.y - round(field.font.height * 0.8)
        return mask, field.x, field.y
    block = field.block
    step = field.font.height + block.line_spacing
    lines = _wrap(text, field, notes)
    if len(lines) > block.max_lines:
        notes.approximate[
            f"a ^FB text block (line {field.line}) has more lines than its {block.max_lines}: "
            "the printer prints the rest over its last line"
        ] = None
    mask = Image.new("L", (block.width, step * block.max_lines), 0)
    for index, line in enumerate(lines):
        row = min(index, block.max_lines - 1)
        offset = {"C": (block.width - line.width) // 2, "R": block.width - line.width}.get(
            block.justify.upper(), 0
        )
        mask.paste(
            255, (max(0, offset), row * step), line.crop((0, 0, min(line.width, block.width), line.height))
        )
    top = field.y - step * block.max_lines if field.typeset else field.y
    return mask, field.x, top


def _bars(modules: str, module_width: int, height: int) -> Image.Image:
    mask = Image.new("L", (max(1, len(modules) * module_width), height), 0)
    pen = ImageDraw.Draw(mask)
    for index, module in enumerate(modules):
        if module == "1":
            x = index * module_width
            pen.rectangle([x, 0, x + module_width - 1, height - 1], fill=255)
    return mask


def _draw_barcode(field: ZplField, notes: _Notes) -> tuple[Image.Image, int, int]:
    assert field.barcode is not None
    barcode = field.barcode
    text = field.text
    if barcode.kind == "qr":
        data = field.data or ""
        matrix = qr_modules(text, data[:1].upper())
        size = len(matrix) * barcode.magnification
        mask = Image.new("L", (len(matrix), len(matrix)), 0)
        mask.putdata([255 if dark else 0 for row in matrix for dark in row])
        mask = mask.resize((size, size), Image.Resampling.NEAREST)
        # Zebra printers put a ^FO-placed QR code about ten dots below its origin.
        return mask, field.x, field.y - size if field.typeset else field.y + _QR_TOP_OFFSET
    if not text:
        return Image.new("L", (1, 1), 0), field.x, field.y
    try:
        if barcode.kind == "code128":
            symbol = zebra_code128(field.data or "")
            modules, text = symbol.modules, symbol.text.replace("\x1d", "")
        else:
            modules = code39_modules(text)
    except ValueError:
        notes.approximate[
            f"the barcode on line {field.line} cannot encode {text[:30]!r}; it is not drawn"
        ] = None
        return Image.new("L", (1, 1), 0), field.x, field.y
    bars = _bars(modules, barcode.module_width, max(1, barcode.height))
    if not barcode.interpretation:
        mask = bars
    else:
        caption = _text_image(text, Font("0", "N", max(16, barcode.module_width * 9), 0), notes)
        mask = Image.new("L", (max(bars.width, caption.width), bars.height + caption.height + 4), 0)
        bars_top = caption.height + 4 if barcode.above else 0
        caption_top = 0 if barcode.above else bars.height + 4
        mask.paste(bars, (0, bars_top))
        mask.paste(caption, ((mask.width - caption.width) // 2, caption_top))
    rotated = mask.rotate(_ROTATION.get(barcode.orientation, 0), expand=True)
    return rotated, field.x, field.y - rotated.height if field.typeset else field.y


def _draw_box(field: ZplField) -> tuple[Image.Image, int, int]:
    assert field.box is not None
    box = field.box
    mask = Image.new("L", (max(1, box.width), max(1, box.height)), 0)
    pen = ImageDraw.Draw(mask)
    shape = [0, 0, box.width - 1, box.height - 1]
    if box.circle:
        pen.ellipse(shape, outline=255, width=max(1, box.thickness))
    else:
        radius = round(box.rounding / 8 * min(box.width, box.height) / 2)
        pen.rounded_rectangle(shape, radius=radius, outline=255, width=max(1, box.thickness))
        if box.thickness * 2 >= min(box.width, box.height):
            pen.rounded_rectangle(shape, radius=radius, fill=255)
    return mask, field.x, field.y


def draw_label(label: ZplLabel) -> tuple[Image.Image, list[str]]:
    """The label as a greyscale image (white paper, black ink) and notes on what it could not show."""
    canvas = Image.new("L", (max(1, label.width), max(1, label.height)), 255)
    notes = _Notes()
    for field in label.fields:
        if field.box is not None:
            mask, x, y = _draw_box(field)
        elif field.barcode is not None:
            mask, x, y = _draw_barcode(field, notes)
        elif field.data is not None:
            mask, x, y = _draw_text_field(field, notes)
            mask = mask.rotate(_ROTATION.get(field.font.orientation, 0), expand=True)
        else:
            continue
        if field.reverse:
            inverted = ImageOps.invert(canvas.crop((x, y, x + mask.width, y + mask.height)))
            canvas.paste(inverted, (x, y), mask)
        elif field.box is not None and field.box.colour == "W":
            canvas.paste(255, (x, y), mask)
        else:
            canvas.paste(0, (x, y), mask)
    if label.reverse:
        canvas = ImageOps.invert(canvas)
    if label.inverted:
        canvas = canvas.rotate(180)
    if label.quantity > 1:
        notes.approximate[
            f"the printer prints {label.quantity} copies of this label (^PQ{label.quantity})"
        ] = None
    if re.search(r"[^0]", "".join(field.font.name for field in label.fields if field.data is not None)):
        notes.approximate["bitmap fonts (other than ^A0) are drawn with the scalable preview font"] = None
    return canvas, notes.lines()
