"""Carrier labels as an OMS would send them, built here with fpdf2 and Pillow, good and hostile.

The barcodes are python-barcode's own Code 128 (not Dockside's bar tables), drawn as filled
rectangles in the PDF and as pixel runs in the PNG, each with a quiet zone.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

from barcode.codex import Code128  # type: ignore[import-untyped]
from fpdf import FPDF
from PIL import Image, ImageDraw

from dockside.shipping.parcels import LabelDocument, LabelFormat

TRACKING = "1Z999AA10123456784"
OTHER_TRACKING = "9400111899223100001234"


def document(fmt: LabelFormat | str, data: bytes) -> LabelDocument:
    """A LabelDocument as the OMS sends it."""
    return LabelDocument(format=LabelFormat(fmt), data_base64=base64.b64encode(data).decode("ascii"))


def code128_modules(value: str) -> str:
    """'1' bar, '0' space, by python-barcode's encoder (it switches to subset C for digit runs)."""
    return str(Code128(value).build()[0])


def label_pdf(
    trackings: tuple[str, ...] = (TRACKING,),
    *,
    size_in: tuple[float, float] = (4, 6),
    module_in: float = 0.015,
    bar_height_in: float = 1.0,
) -> bytes:
    """A carrier label PDF, one page per tracking number: a few lines of text and its Code 128."""
    pdf = FPDF(unit="in", format=size_in)
    pdf.set_auto_page_break(False)
    for tracking in trackings:
        pdf.add_page()
        pdf.set_font("helvetica", "B", size=20)
        pdf.text(0.3, 0.6, "UPS GROUND")
        pdf.set_font("helvetica", size=11)
        for row, line in enumerate(("SHIP TO: MARIA ROSSI", "VIA ROMA 1", "00100 ROMA IT")):
            pdf.text(0.3, 1.0 + row * 0.2, line)
        pdf.rect(0.2, 1.8, size_in[0] - 0.4, 0.02, style="F")
        modules = code128_modules(tracking)
        left = max(0.25, (size_in[0] - len(modules) * module_in) / 2)
        top = 2.2
        for index, module in enumerate(modules):
            if module == "1":
                pdf.rect(left + index * module_in, top, module_in, bar_height_in, style="F")
        pdf.text(left, top + bar_height_in + 0.25, f"TRACKING #: {tracking}")
    return bytes(pdf.output())


def label_png(
    tracking: str = TRACKING,
    *,
    size_px: tuple[int, int] = (812, 1218),
    module_px: int = 3,
    dpi: float | None = None,
    transparent: bool = False,
) -> bytes:
    """A carrier label PNG: text and a Code 128 drawn at whole pixels a module."""
    image = Image.new("RGBA", size_px, (0, 0, 0, 0)) if transparent else Image.new("L", size_px, 255)
    ink = (0, 0, 0, 255) if transparent else 0
    pen = ImageDraw.Draw(image)
    pen.text((30, 30), f"USPS PRIORITY  {tracking}", fill=ink)
    modules = code128_modules(tracking)
    left = max(20, (size_px[0] - len(modules) * module_px) // 2)
    top = size_px[1] // 3
    for index, module in enumerate(modules):
        if module == "1":
            x = left + index * module_px
            pen.rectangle([x, top, x + module_px - 1, top + size_px[1] // 6], fill=ink)
    out = io.BytesIO()
    if dpi is None:
        image.save(out, format="PNG")
    else:
        image.save(out, format="PNG", dpi=(dpi, dpi))
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 1-bit greyscale PNG of `width` x `height` blank pixels: a few kB that inflate to ~50 MB."""
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    block = row * 500
    rows = b"".join(packer.compress(block) for _ in range(height // 500))
    compressed = rows + packer.compress(row * (height % 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", compressed) + _chunk(b"IEND", b"")


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of the given objects (numbered from 1, the first the catalog) with a correct xref."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_with_huge_image(width: int = 30_000, height: int = 30_000) -> bytes:
    """A 4x6 in page drawing one greyscale image that says it is `width` x `height` pixels."""
    pixels = zlib.compress(b"\x80" * 4096)  # far fewer bytes than it claims: decoding is the work
    content = b"q 288 0 0 432 0 0 cm /Im1 Do Q"
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R "
            b"/Resources << /XObject << /Im1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
            % (width, height, len(pixels))
            + pixels
            + b"\nendstream",
        ]
    )


def encrypted_pdf() -> bytes:
    """A carrier label PDF that needs a password to open."""
    pdf = FPDF(unit="in", format=(4, 6))
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.text(0.5, 0.5, "LOCKED")
    return bytes(pdf.output())


def pdf_with_paths(count: int) -> bytes:
    """A 4x6 in page drawing `count` tiny filled squares, from a stream a few kB long."""
    content = zlib.compress(b"0 0 1 1 re f\n" * count, 9)
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        ]
    )


def pdf_with_nested_forms(levels: int = 7, fanout: int = 10) -> bytes:
    """A 4x6 in page whose form draws `fanout` copies of a form that draws `fanout` of the next...

    `levels` deep, the last drawing one small square: 3 kB that PDFium expands into
    fanout ** (levels - 1) paths while it loads the page (seven levels of ten: 13 s here, then
    refused as too complex), before any object can be counted. Only a time limit on a process
    that can be killed stops it.
    """
    forms = []
    for level in range(levels):
        if level == levels - 1:
            content = b"0 0 1 1 re f"
            resources = b""
        else:
            content = b" ".join(b"q 1 0 0 1 %d 0 cm /F Do Q" % (index % 3) for index in range(fanout))
            resources = b" /Resources << /XObject << /F %d 0 R >> >>" % (5 + level + 1)
        forms.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 288 432]%s /Length %d >>\nstream\n"
            % (resources, len(content))
            + content
            + b"\nendstream"
        )
    page_content = b"/F Do"
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R "
            b"/Resources << /XObject << /F 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(page_content) + page_content + b"\nendstream",
            *forms,
        ]
    )
