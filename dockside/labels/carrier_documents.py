"""Carrier labels the OMS sends (ZPL, PDF, PNG): checked once, and turned into printer bytes.

`check_carrier_label(doc)` is what the cloud runs when an order or a label arrives, and what the
agent runs again before printing: it refuses, with a message that says what to send instead,
anything that is not one printable carrier label. `label_to_zpl` and `label_to_escpos` give the
bytes for a station's printer:

- ZPL passes through unchanged: exactly one label format (`^XA` ... `^XZ`) made only of commands
  that draw that label. Commands that set the printer up (media, darkness, speed, calibration,
  network, storage) are refused, not dropped: a carrier label must not change how every later
  label of the station prints, and a label with a command silently removed may not be the label
  the carrier meant.
- PDF (1 to 4 pages, each at most 8.5 x 14 in) is drawn by PDFium at the printer's resolution and
  PNG decoded by Pillow, fitted to the label (`dockside.labels.carrier_raster`), and sent as one
  ZPL graphic (`^GFA`, Z64) per page, or as ESC/POS raster with a cut after each page.

Work is bounded before it is done: the document is at most `MAX_LABEL_BYTES` (LabelDocument), a
page or image at most `MAX_PIXELS` dots however it is drawn, a page at most `MAX_PAGE_OBJECTS`
objects, and the printer's label too. These are plain functions that take milliseconds to tens of
milliseconds a page: async callers run them in a thread (`await asyncio.to_thread(label_to_zpl,
...)`) so the event loop never waits on PDFium (which releases the GIL while it works).

What is not bounded here: the time PDFium takes to load a page built to be slow (forms drawn
within forms grow exponentially: six levels of ten took 35 s in a 2 kB file). The ingest check
loads no page, so the cloud never pays it; an agent drawing such a label holds its PDF
conversions (one at a time: PDFium is not thread-safe) until PDFium is done. A time limit needs
PDFium in a worker process that can be killed.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from PIL import Image

from dockside.errors import InputError
from dockside.labels.carrier_raster import (
    MAX_PAGE_INCHES,
    MAX_PIXELS,
    PNG_SIGNATURE,
    PdfPage,
    escpos_raster,
    fitted_image,
    open_png,
    pdf_page_inches,
    pdf_pages,
    place,
    png_dpi,
    png_unreadable,
    rendered_page,
    zpl_graphic_label,
)
from dockside.labels.zpl_syntax import PREFIX_CHANGERS, ZplCommand, ZplSyntaxError, tokenize
from dockside.shipping.parcels import LabelDocument, LabelFormat

__all__ = ["CheckedLabel", "check_carrier_label", "label_to_escpos", "label_to_zpl"]

PRINTER_DPI = (100, 600)
_ESCPOS_MAX_INCHES = MAX_PAGE_INCHES[1]
_SEND_INSTEAD = "ask the carrier for the label alone, or send it as PDF"

# ZPL passthrough. A carrier label may use only the commands that draw it: this allow-list, and
# the barcode commands (^B plus a letter or digit). ^PQ is allowed for one copy only (more copies
# would print a tracking number twice) and ^MC only as ^MCY (^MCN keeps this label's picture on
# the next one); ^GF only as ^GFA (binary graphic data cannot be read as text).
_DRAWING: dict[str, str] = {
    "XA": "start of label",
    "XZ": "end of label",
    "FO": "field origin",
    "FT": "field typeset",
    "FD": "field data",
    "FS": "field separator",
    "FH": "field hex escapes",
    "FB": "field block",
    "TB": "text block",
    "FR": "field reverse",
    "FX": "comment",
    "FV": "field variable",
    "FW": "field orientation",
    "FP": "field direction",
    "FM": "multiple field origins",
    "A": "font",
    "CF": "default font",
    "CI": "character encoding",
    "PW": "print width",
    "LL": "label length",
    "LH": "label home",
    "LR": "label reverse",
    "PO": "print orientation",
    "PM": "mirror image",
    "PQ": "print quantity",
    "MC": "clear the picture after printing",
    "BY": "barcode defaults",
    "GB": "box",
    "GC": "circle",
    "GD": "diagonal line",
    "GE": "ellipse",
    "GF": "graphic field",
    "GS": "graphic symbol",
}

# Commands that set the printer up rather than draw a label: named so that the refusal says what
# the command would have done. Each changes the station's printer for every later label (most
# are saved with the printer's configuration, ^JUS saves the rest), acts on the printer at once,
# writes its storage, or makes it answer on the status channel the agent reads to confirm prints.
# Any `~` command (the printer acts on it the moment it arrives) is refused whether named or not,
# and any other command not in _DRAWING as unsupported.
_PRINTER_SETUP: dict[str, str] = {
    "JU": "saves or reloads the printer's configuration",
    "JM": "changes the printer's dots per millimetre",
    "JZ": "changes whether the printer reprints after an error",
    "JS": "changes the backfeed sequence",
    "JJ": "sets up the auxiliary port",
    "JT": "sets the head test interval",
    "JW": "sets the ribbon tension",
    "JH": "sets early-warning alerts",
    "JI": "starts the printer's BASIC interpreter",
    "JB": "erases the printer's flash memory",
    "JC": "calibrates the media sensors",
    "JA": "cancels every label in the printer's queue",
    "JR": "resets the printer",
    "JD": "starts diagnostics",
    "JE": "ends diagnostics",
    "JL": "sets the label length by calibration",
    "JN": "makes head test failures fatal",
    "JO": "makes head test failures non-fatal",
    "JP": "pauses and cancels the queue",
    "JX": "cancels a format being received",
    "MN": "sets media tracking (gap, black mark, continuous)",
    "MT": "sets the media type (thermal transfer or direct thermal)",
    "MM": "sets the print mode (tear-off, peel-off, cutter)",
    "MD": "changes the darkness",
    "SD": "sets the darkness",
    "PR": "sets the print, slew and backfeed speed",
    "MF": "sets how media feeds at power-up",
    "ML": "sets the maximum label length",
    "MP": "sets mode protection",
    "MU": "changes the units every later number is read in",
    "MW": "sets the head-cold warning",
    "MI": "sets maintenance alerts",
    "MA": "sets maintenance alerts",
    "LT": "moves the printer's tuned label top",
    "LS": "shifts the printer's tuned left edge",
    "TA": "moves the tear-off position",
    "CW": "replaces one of the printer's font names for every later label",
    "FL": "links fonts in the printer's configuration",
    "SZ": "changes the ZPL version the printer reads",
    "SC": "sets the serial port",
    "SE": "selects an encoding table",
    "SL": "sets the clock mode",
    "ST": "sets the clock",
    "SO": "sets clock offsets",
    "SS": "sets the media sensor levels",
    "SR": "sets the printhead resistance",
    "SX": "sets alerts",
    "SQ": "stops alerts",
    "SP": "starts printing before the label is complete",
    "KN": "renames the printer",
    "KP": "sets the front-panel password",
    "KL": "sets the display language",
    "KD": "sets the display",
    "NC": "selects the network connection",
    "ND": "changes the network settings",
    "NI": "sets the network id",
    "NN": "sets SNMP",
    "NP": "selects the primary network device",
    "NS": "changes the network settings",
    "NT": "sets SMTP",
    "NW": "sets web authentication",
    "NB": "sets the network boot",
    "NR": "resets the network",
    "ID": "deletes files from the printer's memory",
    "EG": "erases stored graphics",
    "EF": "erases stored formats",
    "TO": "copies files between the printer's memories",
    "CM": "changes the printer's memory letters",
    "CO": "sets the font cache",
    "WC": "prints the printer's configuration label",
    "WD": "prints a directory label",
    "PH": "feeds a blank label",
    "PP": "pauses the printer",
    "PS": "resumes printing",
    "CN": "cuts the media now",
    "RO": "resets the printer's counters",
    **dict.fromkeys(
        ("DF", "DG", "DY", "DB", "DU", "DE", "DN", "IS"),
        "stores a format, graphic, font or file in the printer",
    ),
    **dict.fromkeys(
        ("HZ", "HH", "HW", "HT", "HV", "HS", "HI", "HM", "HD", "HB", "HU", "HQ", "HG", "HF"),
        "makes the printer answer on the status channel the agent reads to confirm prints",
    ),
}
# ^A@ (a font by file name) is the one command whose second character is not a letter or digit,
# which the shared tokenizer reads as a syntax error; masked to ^A# (same length) for reading.
_FONT_BY_NAME = re.compile(r"\^[Aa]@")


@dataclass(frozen=True, slots=True)
class CheckedLabel:
    """A carrier label that passed `check_carrier_label`, with what the check learned of it."""

    format: LabelFormat
    data: bytes = field(repr=False)  # what is rendered (ZPL: what is sent, without a byte-order mark)
    pages: int  # labels it prints
    page_inches: tuple[tuple[float, float], ...] = ()  # PDF: each page's width and height
    pixels: tuple[int, int] | None = None  # PNG: its width and height
    zpl_print_width: int | None = None  # ZPL: its ^PW, if it sets one


def _refuse(code: str, message: str) -> InputError:
    return InputError(message, code=code)


def check_carrier_label(doc: LabelDocument) -> CheckedLabel:
    """Refuse a carrier label that is not one printable label of its format; describe it if it is.

    Raises `InputError` with a `label_...` code and a message that says what to send instead.
    Cheap, and safe to run for every tenant: a PDF's pages are counted and measured but not
    loaded (their objects and images are checked when they are drawn, by `label_to_zpl` and
    `label_to_escpos`); a PNG's header and chunk checksums are read, its pixels not inflated.
    """
    data = doc.data()
    if doc.format is LabelFormat.ZPL:
        return _check_zpl(data)
    if doc.format is LabelFormat.PDF:
        inches = pdf_page_inches(data)
        return CheckedLabel(LabelFormat.PDF, data, len(inches), page_inches=tuple(inches))
    image = open_png(data)
    try:
        image.verify()  # every chunk's checksum, without inflating the pixels
    except (OSError, SyntaxError, ValueError) as exc:
        raise _refuse("label_png_unreadable", png_unreadable(exc)) from None
    return CheckedLabel(LabelFormat.PNG, data, 1, pixels=image.size)


def _printer(dpi: int, width_dots: int, height_dots: int) -> None:
    low, high = PRINTER_DPI
    if not low <= dpi <= high:
        raise _refuse(
            "label_printer_invalid", f"a printer of {dpi} dpi: set the printer's resolution, {low} to {high}"
        )
    if width_dots < 1 or height_dots < 1 or width_dots * height_dots > MAX_PIXELS:
        raise _refuse(
            "label_printer_invalid",
            f"a {width_dots} x {height_dots}-dot label: set the printer's label size (at most "
            f"{MAX_PIXELS:,} dots in all)",
        )


def label_to_zpl(doc: LabelDocument, *, dpi: int, width_dots: int, height_dots: int) -> bytes:
    """The bytes a ZPL printer of `dpi` with `width_dots` x `height_dots` labels prints the label from.

    ZPL is sent as given (checked, and refused if its ^PW is wider than the printer's label); a
    PDF or PNG becomes one label format per page, `^XA ... ^FO x,y ^GFA,...:Z64:...^FS ^XZ`, its
    picture centred. Every check of `check_carrier_label` is made on the way, and each page's
    objects and images before it is drawn. Raises `InputError` (`label_...` codes). Takes
    milliseconds to tens of milliseconds a page, mostly in C (PDFium lets go of the GIL): async
    callers run it in a thread.
    """
    _printer(dpi, width_dots, height_dots)
    if doc.format is LabelFormat.ZPL:
        checked = _check_zpl(doc.data())
        if checked.zpl_print_width is not None and checked.zpl_print_width > width_dots:
            raise _refuse(
                "label_zpl_too_wide",
                f"the ZPL label is {checked.zpl_print_width} dots wide (^PW) and the printer's label "
                f"{width_dots}: ask the carrier for ZPL at {dpi} dpi, or send the label as PDF",
            )
        return checked.data
    pages = _pages_as_dots(doc, dpi=dpi, width_dots=width_dots, height_dots=height_dots)
    return b"".join(zpl_graphic_label(page, width_dots=width_dots, height_dots=height_dots) for page in pages)


def label_to_escpos(doc: LabelDocument, *, dpi: int, width_dots: int) -> bytes:
    """ESC/POS raster (`GS v 0`) for a receipt printer of `dpi` and `width_dots`-wide paper.

    Each page is fitted to the paper's width (at most its true size, and at most 14 in long) and
    followed by a partial cut. ZPL cannot print there (`label_zpl_on_escpos`). Raises `InputError`;
    like `label_to_zpl`, async callers run it in a thread.
    """
    height_dots = round(_ESCPOS_MAX_INCHES * dpi)
    _printer(dpi, width_dots, height_dots)
    if doc.format is LabelFormat.ZPL:
        raise _refuse(
            "label_zpl_on_escpos",
            "a ZPL carrier label cannot print on an ESC/POS printer: send the label as PDF or PNG, "
            "or route it to a ZPL printer",
        )
    pages = _pages_as_dots(doc, dpi=dpi, width_dots=width_dots, height_dots=height_dots)
    return b"".join(escpos_raster(page, width_dots=width_dots) for page in pages)


def _pages_as_dots(doc: LabelDocument, *, dpi: int, width_dots: int, height_dots: int) -> list[Image.Image]:
    """Each page of a PDF or PNG label, checked on the way, as printed dots on the label."""
    data = doc.data()
    if doc.format is LabelFormat.PDF:

        def draw(page: PdfPage) -> Image.Image:
            return rendered_page(page, dpi=dpi, width_dots=width_dots, height_dots=height_dots)

        return pdf_pages(data, draw)
    image = open_png(data)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise _refuse("label_png_unreadable", png_unreadable(exc)) from None
    resolution = png_dpi(image)
    placement = place(
        image.width,
        image.height,
        native=dpi / resolution if resolution else None,
        width_dots=width_dots,
        height_dots=height_dots,
    )
    return [fitted_image(image, placement, width_dots=width_dots, height_dots=height_dots)]


# ---------------------------------------------------------------------------------------- ZPL


def _check_zpl(data: bytes) -> CheckedLabel:
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = ""
        if data.startswith(b"%PDF-"):
            hint = " (it looks like a PDF: send it with format pdf)"
        elif data.startswith(PNG_SIGNATURE):
            hint = " (it looks like a PNG: send it with format png)"
        raise _refuse(
            "label_zpl_not_text",
            f"the ZPL label is not UTF-8 text (byte {exc.start:,} is {data[exc.start]:#04x}){hint}: send "
            f"ZPL as UTF-8 or ASCII text, with graphics as ^GFA rather than binary ^GFB",
        ) from None
    try:
        leading, commands = tokenize(_FONT_BY_NAME.sub("^A#", text))
    except ZplSyntaxError as exc:
        raise _refuse(
            "label_zpl_invalid",
            f"the ZPL label is not valid ZPL: {exc.message} (a ~ in field data is a command to the "
            f"printer: write it as _7E after ^FH)",
        ) from None
    if leading.strip() or not commands or commands[0].name != "XA" or commands[0].prefix != "^":
        raise _refuse(
            "label_zpl_not_zpl",
            f"the ZPL label does not start with ^XA (it starts {text.lstrip()[:20]!r}): send one label "
            f"format, ^XA ... ^XZ",
        )
    print_width: int | None = None
    ended: ZplCommand | None = None
    for command in commands[1:]:
        where = f"line {command.line}, column {command.column}"
        if command.name == "XA" and command.prefix == "^":
            raise _refuse(
                "label_zpl_two_formats",
                f"the ZPL has a second ^XA at {where}: send exactly one label format (^XA ... ^XZ) a "
                f"document; a parcel with two labels sends each as its own document",
            )
        if ended is not None:
            raise _refuse(
                "label_zpl_after_end",
                f"the ZPL goes on after its ^XZ ({command.text[:20]!r} at {where}): send one label "
                f"format and nothing after it",
            )
        _check_command(command, where)
        if command.name == "XZ":
            ended = command
            if command.params.strip():
                raise _refuse(
                    "label_zpl_after_end",
                    f"the ZPL goes on after its ^XZ ({command.params.strip()[:20]!r}): send one label "
                    f"format and nothing after it",
                )
        elif command.name == "PW":
            width = command.args()[0]
            if not width.isdigit() or not 1 <= int(width) <= 32_000:
                raise _refuse("label_zpl_invalid", f"^PW{width[:10]} at {where} is not a print width in dots")
            print_width = int(width)
    if ended is None:
        raise _refuse(
            "label_zpl_unterminated",
            "the ZPL label never ends: it has no ^XZ (it may have been cut short); send the whole label, "
            "^XA ... ^XZ",
        )
    return CheckedLabel(LabelFormat.ZPL, data, 1, zpl_print_width=print_width)


def _check_command(command: ZplCommand, where: str) -> None:
    """Refuse a command that is not part of drawing this one label."""
    shown = f"{command.prefix}{command.name}"
    if command.name in PREFIX_CHANGERS:
        raise _refuse(
            "label_zpl_config_command",
            f"{shown} at {where} changes the printer's command characters for every later label: "
            f"{_SEND_INSTEAD}",
        )
    purpose = _PRINTER_SETUP.get(command.name)
    if command.prefix == "~" or purpose is not None:
        what = f"{purpose}" if purpose else "is a control command the printer acts on at once"
        raise _refuse(
            "label_zpl_config_command",
            f"{shown} at {where} {what}: a carrier label may not set up the station's printer; "
            f"{_SEND_INSTEAD}",
        )
    barcode = command.name[0] == "B" and command.name != "BY"
    if command.name not in _DRAWING and not barcode:
        raise _refuse(
            "label_zpl_unsupported_command",
            f"{shown} at {where} is not a command Dockside passes through from a carrier label (it "
            f"draws with ^FO/^FT fields, fonts, boxes, barcodes and ^GFA graphics): {_SEND_INSTEAD}",
        )
    first = command.args()[0].upper()
    if command.name == "PQ" and first not in ("", "1"):
        raise _refuse(
            "label_zpl_copies",
            f"{command.text[:20]} at {where} prints {first[:10]} copies: a carrier label prints once "
            f"(reprint it on purpose at the station); send it with ^PQ1 or without ^PQ",
        )
    if command.name == "MC" and first not in ("", "Y"):
        raise _refuse(
            "label_zpl_config_command",
            f"{command.text[:20]} at {where} keeps this label's picture on the next label: send ^MCY "
            f"or no ^MC",
        )
    if command.name == "GF" and not first.startswith("A"):
        raise _refuse(
            "label_zpl_not_text",
            f"{command.text[:20]} at {where} is a binary graphic: send graphics as ^GFA (hex or Z64 text)",
        )
