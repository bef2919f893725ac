"""Carrier labels from the OMS: checked, turned into ZPL graphics and ESC/POS raster that scan.

Every printed label is read back here without Dockside's code: the `^GFA` Z64 data by this file's
own reader (base64, zlib, CRC-16/XMODEM by the bit, rows of dots into a Pillow image) and the
ESC/POS `GS v 0` bands likewise; the picture is then decoded by zbar, as a carrier's scanner would.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
import zlib

import pytest
from PIL import Image
from pydantic import ValidationError
from pyzbar.pyzbar import ZBarSymbol  # type: ignore[import-untyped]
from pyzbar.pyzbar import decode as zbar_decode

from dockside.errors import InputError
from dockside.labels.carrier_documents import check_carrier_label, label_to_escpos, label_to_zpl
from dockside.shipping.parcels import LabelDocument, LabelFormat
from hardware_mocks.escpos import EscposStream
from hardware_mocks.printer_events import JobComplete
from hardware_mocks.zpl import ZplStream
from tests.dockside.labels.carrier_fixtures import (
    OTHER_TRACKING,
    TRACKING,
    document,
    encrypted_pdf,
    label_pdf,
    label_png,
    pdf_with_huge_image,
    pdf_with_paths,
    png_bomb,
)

LABEL_INCHES = (4, 6)
_GRAPHIC = re.compile(
    r"\^XA\^PW(\d+)\^LL(\d+)\^LH0,0\^FO(\d+),(\d+)\^GFA,(\d+),(\d+),(\d+),:Z64:([A-Za-z0-9+/=]+):([0-9A-F]{4})\^FS\^XZ\n"
)


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _dots_to_picture(rows: bytes, row_bytes: int) -> Image.Image:
    """Rows of printer dots (a set bit prints) as a black-on-white greyscale picture."""
    # Pillow's mode "1" reads a set bit as white: flip every bit so printed dots come out black.
    flipped = bytes(byte ^ 0xFF for byte in rows)
    return Image.frombytes("1", (row_bytes * 8, len(rows) // row_bytes), flipped).convert("L")


def read_zpl_graphics(zpl: bytes) -> list[Image.Image]:
    """Each label format of `zpl`, a single ^GFA graphic, as the label it prints."""
    text = zpl.decode("ascii")
    labels = []
    position = 0
    for match in _GRAPHIC.finditer(text):
        assert match.start() == position, f"unexpected ZPL between labels: {text[position : match.start()]!r}"
        position = match.end()
        width, length, left, top, _, total, row_bytes = (int(match[i]) for i in range(1, 8))
        encoded, crc = match[8], int(match[9], 16)
        assert _crc16_xmodem(encoded.encode("ascii")) == crc
        rows = zlib.decompress(base64.b64decode(encoded, validate=True))
        assert len(rows) == total
        assert total % row_bytes == 0
        graphic = _dots_to_picture(rows, row_bytes)
        label = Image.new("L", (width, length), 255)
        label.paste(graphic, (left, top))
        labels.append(label)
    assert position == len(text), f"trailing ZPL: {text[position:][:60]!r}"
    return labels


def read_escpos_pages(raster: bytes) -> list[Image.Image]:
    """Each page of `GS v 0` bands (ended by a `GS V 66 0` cut) as the paper it prints."""
    pages: list[Image.Image] = []
    bands: list[Image.Image] = []
    position = 0
    while position < len(raster):
        if raster.startswith(b"\x1dv0\x00", position):
            row_bytes = int.from_bytes(raster[position + 4 : position + 6], "little")
            rows = int.from_bytes(raster[position + 6 : position + 8], "little")
            data = raster[position + 8 : position + 8 + row_bytes * rows]
            assert len(data) == row_bytes * rows
            bands.append(_dots_to_picture(data, row_bytes))
            position += 8 + row_bytes * rows
        elif raster.startswith(b"\x1dVB\x00", position):
            paper = Image.new("L", (bands[0].width, sum(band.height for band in bands)), 255)
            top = 0
            for band in bands:
                paper.paste(band, (0, top))
                top += band.height
            pages.append(paper)
            bands = []
            position += 4
        else:
            raise AssertionError(f"unexpected ESC/POS at {position}: {raster[position : position + 8]!r}")
    assert not bands, "raster after the last cut"
    return pages


def scanned(picture: Image.Image) -> list[str]:
    return [symbol.data.decode("ascii") for symbol in zbar_decode(picture, symbols=[ZBarSymbol.CODE128])]


def _refused(doc: LabelDocument, code: str, *words: str) -> InputError:
    with pytest.raises(InputError) as caught:
        check_carrier_label(doc)
    assert caught.value.code == code, caught.value.message
    for word in words:
        assert word in caught.value.message
    with pytest.raises(InputError) as again:
        label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218)
    assert again.value.code == code
    return caught.value


# ------------------------------------------------------------------------------- what prints


@pytest.mark.parametrize("dpi", [203, 300])
def test_a_pdf_label_prints_as_a_zpl_graphic_whose_barcode_scans(dpi: int) -> None:
    doc = document("pdf", label_pdf())
    width, height = LABEL_INCHES[0] * dpi, LABEL_INCHES[1] * dpi

    checked = check_carrier_label(doc)
    zpl = label_to_zpl(doc, dpi=dpi, width_dots=width, height_dots=height)

    assert (checked.pages, checked.page_inches) == (1, ((4.0, 6.0),))
    row_bytes = (width + 7) // 8
    assert zpl.startswith(f"^XA^PW{width}^LL{height}^LH0,0^FO0,0^GFA,{row_bytes * height},".encode())
    (label,) = read_zpl_graphics(zpl)
    assert label.size == (width, height)
    assert scanned(label) == [TRACKING]
    # At its true size: the bars start 2.2 in down and are 1 in high, as the PDF put them.
    rows = range(round(1.9 * dpi), height)
    bar_rows = [y for y in rows if label.crop((0, y, width, y + 1)).histogram()[0] > 80]
    top = bar_rows[0]
    bar_height = next(index for index, y in enumerate(bar_rows) if y != top + index)
    assert abs(top - 2.2 * dpi) <= 2
    assert abs(bar_height - 1.0 * dpi) <= 2


def test_each_page_of_a_two_page_pdf_is_its_own_label() -> None:
    doc = document("pdf", label_pdf((TRACKING, OTHER_TRACKING)))

    labels = read_zpl_graphics(label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218))

    assert [scanned(label) for label in labels] == [[TRACKING], [OTHER_TRACKING]]


def test_a_landscape_page_is_turned_onto_a_portrait_label() -> None:
    doc = document("pdf", label_pdf(size_in=(6, 4)))

    zpl = label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218)

    assert check_carrier_label(doc).page_inches == ((6.0, 4.0),)
    # Turned, the 6 x 4 in page fills the 4 x 6 in label at its true size: 812 x 1218 dots.
    assert re.search(rb"\^FO0,0\^GFA,124236,124236,102,", zpl) is not None
    (label,) = read_zpl_graphics(zpl)
    assert scanned(label) == [TRACKING]
    # Its barcode now runs down the label (upright it would be wider than high).
    symbol = zbar_decode(label, symbols=[ZBarSymbol.CODE128])[0]
    assert symbol.rect.height > 2 * symbol.rect.width


def test_a_letter_page_is_shrunk_to_fit_and_a_small_label_is_not_enlarged() -> None:
    letter = document("pdf", label_pdf(size_in=(8.5, 11), module_in=0.03))
    small = document("pdf", label_pdf(size_in=(3, 2), module_in=0.01))

    (shrunk,) = read_zpl_graphics(label_to_zpl(letter, dpi=203, width_dots=812, height_dots=1218))
    zpl = label_to_zpl(small, dpi=203, width_dots=812, height_dots=1218)

    assert scanned(shrunk) == [TRACKING]
    placed = re.search(r"\^FO(\d+),(\d+)\^GFA,\d+,\d+,(\d+),", zpl.decode())
    assert placed is not None
    left, top, row_bytes = (int(placed[index]) for index in (1, 2, 3))
    assert row_bytes == (3 * 203 + 7) // 8  # 3 in at 203 dpi, not stretched to 4 in
    assert (left, top) == ((812 - 609) // 2, (1218 - 406) // 2)


@pytest.mark.parametrize("dpi", [203, 300])
def test_a_png_label_prints_as_a_zpl_graphic_whose_barcode_scans(dpi: int) -> None:
    doc = document("png", label_png())

    (label,) = read_zpl_graphics(label_to_zpl(doc, dpi=dpi, width_dots=4 * dpi, height_dots=6 * dpi))

    assert check_carrier_label(doc).pixels == (812, 1218)
    assert label.size == (4 * dpi, 6 * dpi)
    assert scanned(label) == [TRACKING]


def test_a_transparent_png_prints_its_ink_only() -> None:
    doc = document("png", label_png(transparent=True))

    (label,) = read_zpl_graphics(label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218))

    assert scanned(label) == [TRACKING]
    assert label.getpixel((5, 5)) == 255  # transparent is blank paper, not black


def test_a_png_that_says_its_resolution_prints_at_its_true_size() -> None:
    doc = document("png", label_png(size_px=(600, 400), module_px=2, dpi=200))

    zpl = label_to_zpl(doc, dpi=300, width_dots=1200, height_dots=1800)

    (label,) = read_zpl_graphics(zpl)
    assert scanned(label) == [TRACKING]
    # 3 x 2 in at 300 dpi, turned to fit better? No: upright is the same scale, so it stays upright.
    assert re.search(rb",113,:Z64", zpl) is not None  # 900 dots a row


def test_a_pdf_label_prints_as_escpos_raster_that_scans() -> None:
    raster = label_to_escpos(document("pdf", label_pdf()), dpi=203, width_dots=576)

    (paper,) = read_escpos_pages(raster)
    assert paper.width == 576
    assert scanned(paper) == [TRACKING]


def test_a_png_label_prints_as_escpos_raster_that_scans() -> None:
    raster = label_to_escpos(document("png", label_png()), dpi=203, width_dots=832)

    (paper,) = read_escpos_pages(raster)
    assert paper.size == (832, 1248)  # a PNG that does not say its resolution fills the paper's width
    assert scanned(paper) == [TRACKING]


def _jobs(stream: EscposStream | ZplStream, data: bytes) -> list[bytes]:
    """What a mock printer's own stream parser takes as whole jobs, fed in awkward pieces."""
    jobs = []
    for start in range(0, len(data), 997):
        stream.feed(data[start : start + 997])
        while (event := stream.next_event()) is not None:
            if isinstance(event, JobComplete):
                jobs.append(event.raw)
    return jobs


def test_the_mock_printers_take_one_job_a_page() -> None:
    doc = document("pdf", label_pdf((TRACKING, OTHER_TRACKING)))
    zpl = label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218)
    raster = label_to_escpos(doc, dpi=203, width_dots=576)

    zpl_jobs = _jobs(ZplStream(), zpl)
    receipts = _jobs(EscposStream(), raster)

    assert len(zpl_jobs) == 2
    assert all(job.startswith(b"^XA") and job.rstrip().endswith(b"^XZ") for job in zpl_jobs)
    assert len(receipts) == 2
    assert b"".join(receipts) == raster


def test_zpl_passes_through_unchanged() -> None:
    graphic = base64.b64encode(zlib.compress(b"\xff" * 20)).decode()
    zpl = (
        "\n  ^XA^CI28^PW812^LL1218^LH0,0^LRN^PON^MCY^PQ1\n"
        f"^FO50,50^A0N,40,40^FDUPS GROUND^FS^FX a comment^FS\n"
        f"^FO50,200^BY3^BCN,200,Y,N,N^FD>:{TRACKING}^FS\n"
        "^FO50,500^GB700,4,4^FS^FO50,520^FH^FDMaria_7ERossi^FS\n"
        "^FO50,600^A@N,30,30,E:TT0003M_.FNT^FDby name^FS^fo50,650^a0n,20^fdlower case^fs\n"
        f"^FO10,10^GFA,20,20,2,:Z64:{graphic}:0000^FS\n"
        "^XZ\n"
    ).encode()

    assert label_to_zpl(document("zpl", zpl), dpi=203, width_dots=812, height_dots=1218) == zpl
    assert check_carrier_label(document("zpl", zpl)).zpl_print_width == 812
    with_bom = label_to_zpl(document("zpl", b"\xef\xbb\xbf" + zpl), dpi=203, width_dots=812, height_dots=1218)
    assert with_bom == zpl


def test_the_label_renders_the_same_from_many_threads_at_once() -> None:
    doc = document("pdf", label_pdf())
    expected = label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218)
    results: list[bytes] = []

    def render() -> None:
        for _ in range(3):
            results.append(label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218))

    threads = [threading.Thread(target=render) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [expected] * 12


# ------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("zpl", "code", "named"),
    [
        ("^XA^FO1,1^FDa^FS^XZ^XA^FO1,1^FDb^FS^XZ", "label_zpl_two_formats", "second ^XA"),
        ("^XA^FO1,1^FDa^FS^XA^FDb^FS^XZ", "label_zpl_two_formats", "second ^XA"),
        ("^XA~JC^FO1,1^FDa^FS^XZ", "label_zpl_config_command", "~JC"),
        ("^XA^JUS^FO1,1^FDa^FS^XZ", "label_zpl_config_command", "^JU"),
        ("^XA^MNY^XZ", "label_zpl_config_command", "media tracking"),
        ("^XA^MTD^XZ", "label_zpl_config_command", "^MT"),
        ("^XA^MMC^XZ", "label_zpl_config_command", "^MM"),
        ("^XA^MD10^XZ", "label_zpl_config_command", "darkness"),
        ("^XA~SD25^XZ", "label_zpl_config_command", "~SD"),
        ("^XA^PR4^XZ", "label_zpl_config_command", "speed"),
        ("^XA^LT20^XZ", "label_zpl_config_command", "^LT"),
        ("^XA^LS10^XZ", "label_zpl_config_command", "^LS"),
        ("^XA^JZY^XZ", "label_zpl_config_command", "^JZ"),
        ("^XA^JMB^XZ", "label_zpl_config_command", "dots per millimetre"),
        ("^XA^KNevil^XZ", "label_zpl_config_command", "^KN"),
        ("^XA^ND2,P,1.2.3.4^XZ", "label_zpl_config_command", "network"),
        ("^XA^NSa^XZ", "label_zpl_config_command", "^NS"),
        ("^XA^NC1^XZ", "label_zpl_config_command", "^NC"),
        ("^XA^HZA^XZ", "label_zpl_config_command", "status channel"),
        ("^XA^JSA^XZ", "label_zpl_config_command", "^JS"),
        ("^XA~JA^XZ", "label_zpl_config_command", "~JA"),
        ("^XA~JR^XZ", "label_zpl_config_command", "resets"),
        ("^XA~TA010^XZ", "label_zpl_config_command", "~TA"),
        ("^XA^SZ1^XZ", "label_zpl_config_command", "^SZ"),
        ("^XA~WC^XZ", "label_zpl_config_command", "~WC"),
        ("^XA^IDR:*.*^XZ", "label_zpl_config_command", "^ID"),
        ("^XA^DFR:X.ZPL^FS^XZ", "label_zpl_config_command", "^DF"),
        ("^XA~DGR:LOGO.GRF,2,1,FF00^XZ", "label_zpl_config_command", "~DG"),
        ("^XA~DYR:F,A,P,2,,FF^XZ", "label_zpl_config_command", "~DY"),
        ("^XA^CW0,E:EVIL.TTF^XZ", "label_zpl_config_command", "font"),
        ("^XA^CC+^XZ", "label_zpl_config_command", "command characters"),
        ("^XA^MCN^FO1,1^FDa^FS^XZ", "label_zpl_config_command", "next label"),
        ("^XA^FO1,1^FDa^FS^PQ2^XZ", "label_zpl_copies", "2 copies"),
        ("^XA^FO1,1^XGR:LOGO.GRF^FS^XZ", "label_zpl_unsupported_command", "^XG"),
        ("^XA^FO1,1^GFB,2,2,1,ab^FS^XZ", "label_zpl_not_text", "^GFA"),
        ("^XA^FO1,1^FDa^FS", "label_zpl_unterminated", "^XZ"),
        ("^XA^FO1,1^FDa^FS^XZ garbage", "label_zpl_after_end", "garbage"),
        ("^XA^FO1,1^FDa^FS^XZ^FO1,1^FDb^FS", "label_zpl_after_end", "^FO"),
        ("hello ^XA^XZ", "label_zpl_not_zpl", "^XA"),
        ("^FO1,1^FDa^FS^XZ", "label_zpl_not_zpl", "^XA"),
        ("^XA^FDa ~ b^FS^XZ", "label_zpl_invalid", "_7E"),
    ],
)
def test_zpl_that_is_not_one_plain_label_is_refused(zpl: str, code: str, named: str) -> None:
    _refused(document("zpl", zpl.encode()), code, named)


def test_zpl_that_is_not_utf8_is_refused() -> None:
    error = _refused(document("zpl", b"^XA^FO1,1^FD\xff\xfe^FS^XZ"), "label_zpl_not_text", "UTF-8", "byte 12")
    assert "0xff" in error.message


def test_zpl_wider_than_the_printer_is_refused_at_the_printer() -> None:
    doc = document("zpl", b"^XA^PW1200^FO1,1^FDa^FS^XZ")
    check_carrier_label(doc)  # fine for a 300 dpi printer

    with pytest.raises(InputError) as caught:
        label_to_zpl(doc, dpi=203, width_dots=812, height_dots=1218)

    assert caught.value.code == "label_zpl_too_wide"
    assert "203 dpi" in caught.value.message


def test_zpl_cannot_print_on_an_escpos_printer() -> None:
    with pytest.raises(InputError) as caught:
        label_to_escpos(document("zpl", b"^XA^XZ"), dpi=203, width_dots=576)
    assert caught.value.code == "label_zpl_on_escpos"


def test_a_pdf_that_is_not_a_pdf_is_refused() -> None:
    _refused(document("pdf", b"<html>label</html>"), "label_not_pdf", "%PDF-")
    _refused(document("pdf", label_png()), "label_not_pdf", "format png")
    _refused(document("pdf", b"%PDF-1.7\nnot really a pdf at all\n%%EOF\n"), "label_pdf_unreadable")


def test_a_truncated_pdf_is_refused() -> None:
    whole = label_pdf()

    _refused(document("pdf", whole[: len(whole) // 2]), "label_pdf_truncated", "whole file")
    _refused(document("pdf", whole[:-30]), "label_pdf_truncated")


def test_a_50_page_pdf_is_refused() -> None:
    error = _refused(
        document("pdf", label_pdf((TRACKING,) * 50)), "label_too_many_pages", "50 pages", "1 to 4"
    )
    assert "each parcel's own label" in error.message


def test_a_huge_page_is_refused_before_it_is_drawn() -> None:
    _refused(document("pdf", label_pdf(size_in=(100, 100))), "label_page_too_large", "100.0 x 100.0 in")
    _refused(document("pdf", label_pdf(size_in=(4, 20))), "label_page_too_large", "8.5 x 14.0 in")


def _drawing_refused(doc: LabelDocument, code: str, *words: str) -> None:
    """Refused when the page is drawn; the ingest check (which loads no page) lets it by."""
    assert check_carrier_label(doc).pages == 1
    for convert in (
        functools.partial(label_to_zpl, doc, dpi=203, width_dots=812, height_dots=1218),
        functools.partial(label_to_escpos, doc, dpi=203, width_dots=576),
    ):
        with pytest.raises(InputError) as caught:
            convert()
        assert caught.value.code == code, caught.value.message
        for word in words:
            assert word in caught.value.message


def test_a_pdf_image_too_big_to_decode_is_refused_before_it_is_drawn() -> None:
    _drawing_refused(document("pdf", pdf_with_huge_image()), "label_pdf_too_large", "30,000 x 30,000")


def test_a_pdf_page_that_draws_too_many_objects_is_refused_before_it_is_drawn() -> None:
    flood = pdf_with_paths(100_001)
    assert len(flood) < 10_000

    _drawing_refused(document("pdf", flood), "label_pdf_too_complex", "100,000 objects")
    (label,) = read_zpl_graphics(
        label_to_zpl(document("pdf", pdf_with_paths(100_000)), dpi=203, width_dots=812, height_dots=1218)
    )
    assert label.getpixel((0, 1217)) == 0  # the squares, all at the page's bottom-left corner


def test_a_password_protected_pdf_is_refused() -> None:
    _refused(document("pdf", encrypted_pdf()), "label_pdf_encrypted", "without a password")


def test_a_png_that_is_not_a_png_is_refused() -> None:
    _refused(document("png", b"GIF89a....."), "label_not_png", "89 50 4E 47")
    _refused(document("png", label_pdf()), "label_not_png", "format pdf")
    _refused(document("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "label_png_unreadable")


def test_a_truncated_png_is_refused() -> None:
    whole = label_png()
    _refused(document("png", whole[: len(whole) // 2]), "label_png_unreadable", "as it was downloaded")


def test_a_png_bomb_is_refused_before_it_is_inflated() -> None:
    bomb = png_bomb()
    assert len(bomb) < 200_000

    _refused(document("png", bomb), "label_png_too_large", "20,000 x 20,000")
    _refused(
        document("png", png_bomb(7_000, 7_000)), "label_png_too_large"
    )  # 49 Mpx: under Pillow's own bound


def test_a_100_mb_label_is_refused_before_it_is_decoded() -> None:
    hundred_mb_base64 = "A" * (100 * 1024 * 1024 // 3 * 4)

    with pytest.raises(ValidationError) as caught:
        LabelDocument(format=LabelFormat.PDF, data_base64=hundred_mb_base64)

    assert caught.value.errors()[0]["type"] == "string_too_long"


@pytest.mark.parametrize(
    ("dpi", "width", "height"), [(50, 812, 1218), (203, 0, 1218), (203, 812, -1), (600, 10_000, 10_000)]
)
def test_a_printer_of_impossible_size_is_refused(dpi: int, width: int, height: int) -> None:
    with pytest.raises(InputError) as caught:
        label_to_zpl(document("pdf", label_pdf()), dpi=dpi, width_dots=width, height_dots=height)
    assert caught.value.code == "label_printer_invalid"
