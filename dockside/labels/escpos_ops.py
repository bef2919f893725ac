"""The operations of an ESC/POS template and the printer bytes each one makes, through python-escpos.

Each operation is built once when a template compiles; everything that does not depend on order data
(style and alignment commands, images, feeds, cuts) is turned into bytes by python-escpos right
then. Per render an operation only adds its values: text encoded in the template's code page,
barcode and QR data framed by python-escpos. No value can carry a control byte to the printer:
`printable_text` turns every control character into a space before anything is encoded, and
unencodable characters print as '?'.
"""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from escpos.printer import Dummy
from PIL import Image

from dockside.labels.work_bounds import text_of

__all__ = [
    "MAX_VALUE_CHARS",
    "BarcodeOp",
    "ColumnsOp",
    "CutOp",
    "EscposOp",
    "FeedOp",
    "ImageOp",
    "PrinterSetup",
    "QrOp",
    "RuleOp",
    "TextOp",
    "escpos_value",
    "printable_text",
]

MAX_VALUE_CHARS = 500
FONT_A_DOTS = 12  # font A is 12 x 24 dots on 203-dpi receipt printers

# Control characters, C1 controls, line/paragraph separators and lone surrogates become spaces.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ALIGN = {"left", "center", "right"}


def escpos_value(value: Any) -> str:
    """A value as one line of printable text (the `finalize` of ESC/POS templates)."""
    if value is None:
        return ""
    kind = type(value)
    text = value if kind is str else str(value) if kind is int else text_of(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS]
    return _UNPRINTABLE.sub(" ", text) if _UNPRINTABLE.search(text) else text


def printable_text(text: str) -> str:
    """`text` with every control character replaced by a space."""
    return _UNPRINTABLE.sub(" ", text) if _UNPRINTABLE.search(text) else text


_local = threading.local()


def _framer(align: str) -> Dummy:
    """A python-escpos in-memory printer for this thread, emptied and aligned for the next command."""
    printer: Dummy | None = getattr(_local, "printer", None)
    if printer is None:
        printer = Dummy(profile=PrinterSetup.PROFILE)
        _local.printer = printer
    printer.clear()
    printer.set(align=align)
    return printer


@dataclass(frozen=True, slots=True)
class PrinterSetup:
    """The printer profile and code page a template is written for, and the bytes that select them."""

    PROFILE = "TM-T20II"

    codepage: str
    codec: str
    width_dots: int
    init: bytes

    @classmethod
    def build(cls, codepage: str, width_dots: int) -> PrinterSetup:
        """Resolve a code page name; raises ValueError naming the choices if the printer lacks it."""
        printer = Dummy(profile=cls.PROFILE)
        known = {name.upper() for name in printer.profile.profile_data["codePages"].values()}
        name = codepage.upper()
        try:
            codec = codecs.lookup(name.replace("ISO_", "ISO-")).name
        except LookupError:
            codec = ""
        if name not in known or not codec:
            choices = sorted(
                n for n in known if n.startswith(("CP", "ISO")) and _has_codec(n.replace("ISO_", "ISO-"))
            )
            raise ValueError(f"unknown code page {codepage!r}: use one of {', '.join(choices)}")
        printer.hw("INIT")
        printer.charcode(name)
        return cls(name, codec, width_dots, printer.output)

    @property
    def columns(self) -> int:
        """Characters per line in font A at normal size."""
        return self.width_dots // FONT_A_DOTS

    def encode(self, text: str) -> bytes:
        """Printable text in the code page; characters it lacks become '?'."""
        return printable_text(text).encode(self.codec, "replace")

    def shown(self, text: str) -> str:
        """What the printer prints for `text`: the encoded text read back."""
        return self.encode(text).decode(self.codec)


def _has_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _style(align: str, bold: bool, width: int, height: int, underline: bool = False) -> bytes:
    printer = Dummy(profile=PrinterSetup.PROFILE)
    printer.set(
        align=align, bold=bold, underline=1 if underline else 0, custom_size=True, width=width, height=height
    )
    return bytes(printer.output)


@dataclass(slots=True)
class EscposOp:
    """One operation; `fields` are the names of its templated values, in the order they render.

    `units` is what printing it once charges the render budget (about a unit per 64 bytes made or
    per microsecond of work).
    """

    path: str
    fields: tuple[str, ...] = ()
    align: str = "left"
    units: int = 1

    def prepare(self, setup: PrinterSetup) -> None:
        """Make the bytes that do not depend on order data (called once, at compile time)."""

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        """The printer bytes for this operation with these rendered values."""
        raise NotImplementedError


@dataclass(slots=True)
class TextOp(EscposOp):
    """One line of text with alignment, bold, underline and a size multiplier."""

    bold: bool = False
    underline: bool = False
    width: int = 1
    height: int = 1
    prefix: str = ""
    units: int = 8

    def __post_init__(self) -> None:
        # The style commands are ASCII, so a whole run of text lines can be encoded in one call.
        self.prefix = _style(self.align, self.bold, self.width, self.height, self.underline).decode("ascii")

    def line(self, values: list[str], setup: PrinterSetup) -> str:
        return values[0] if values else ""

    def text(self, values: list[str], setup: PrinterSetup) -> str:
        """The style commands, the printable line and its line feed, still to be encoded."""
        return self.prefix + printable_text(self.line(values, setup)) + "\n"

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        return self.text(values, setup).encode(setup.codec, "replace")


@dataclass(slots=True)
class ColumnsOp(TextOp):
    """One line of fixed-width cells, each aligned in its own width (in characters)."""

    widths: tuple[int, ...] = ()
    aligns: tuple[str, ...] = ()
    layout: str = ""

    def __post_init__(self) -> None:
        TextOp.__post_init__(self)
        # One format call pads, cuts and aligns every cell: "{:<14.14}{:>8.8}".
        marks = {"left": "<", "center": "^", "right": ">"}
        cells = zip(self.widths, self.aligns, strict=True)
        self.layout = "".join(f"{{:{marks[align]}{width}.{width}}}" for width, align in cells)

    def line(self, values: list[str], setup: PrinterSetup) -> str:
        return self.layout.format(*values).rstrip()


@dataclass(slots=True)
class RuleOp(TextOp):
    """A line of one character across the paper."""

    char: str = "-"
    printed: str = ""

    def line(self, values: list[str], setup: PrinterSetup) -> str:
        return self.char * (setup.columns // self.width)

    def prepare(self, setup: PrinterSetup) -> None:
        self.printed = TextOp.text(self, [], setup)

    def text(self, values: list[str], setup: PrinterSetup) -> str:
        return self.printed


@dataclass(slots=True)
class BarcodeOp(EscposOp):
    """A Code 128 barcode (printed by the printer itself), with its text below, above, both or none."""

    height: int = 80
    module: int = 2
    text_position: str = "BELOW"
    units: int = 40

    @staticmethod
    def data(value: str) -> str:
        """Printable ASCII only; `{` starts a code set change in ESC/POS Code 128, so it is doubled."""
        ascii_text = printable_text(value).encode("ascii", "replace").decode("ascii")
        return ascii_text.replace("{", "{{")[:250]

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        data = self.data(values[0])
        if not data:
            return b""
        printer = _framer(self.align)
        # _hw_barcode, not barcode(): the public call prints its choice of renderer to stdout.
        printer._hw_barcode(
            "{B" + data, "CODE128", self.height, self.module, self.text_position, "A", False, "B", False
        )
        return bytes(printer.output)


@dataclass(slots=True)
class QrOp(EscposOp):
    """A QR code printed by the printer itself; `size` is the module size in dots (1-16)."""

    size: int = 6
    error_correction: str = "M"
    units: int = 40

    @staticmethod
    def data(value: str) -> str:
        return printable_text(value)[:700]

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        data = self.data(values[0])
        if not data:
            return b""
        printer = _framer(self.align)
        levels = {"L": 0, "M": 1, "Q": 2, "H": 3}
        printer.qr(data, ec=levels[self.error_correction], size=self.size, native=True)
        return bytes(printer.output)


@dataclass(slots=True)
class ImageOp(EscposOp):
    """A fixed picture (a logo), converted to printer raster bytes once, at compile time."""

    image: Image.Image = field(default_factory=lambda: Image.new("1", (1, 1), 1))
    raster: bytes = b""

    def prepare(self, setup: PrinterSetup) -> None:
        printer = Dummy(profile=PrinterSetup.PROFILE)
        printer.set(align=self.align)
        printer.image(self.image, center=False)
        self.raster = bytes(printer.output) + b"\n"
        self.units = 1 + len(self.raster) // 64

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        return self.raster


@dataclass(slots=True)
class FeedOp(EscposOp):
    """Blank lines."""

    lines: int = 1
    command: bytes = b""

    def prepare(self, setup: PrinterSetup) -> None:
        printer = Dummy(profile=PrinterSetup.PROFILE)
        printer.print_and_feed(self.lines)
        self.command = bytes(printer.output)

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        return self.command


@dataclass(slots=True)
class CutOp(EscposOp):
    """Feed past the cutter and cut, fully or partly."""

    partial: bool = False
    command: bytes = b""

    def prepare(self, setup: PrinterSetup) -> None:
        printer = Dummy(profile=PrinterSetup.PROFILE)
        printer.cut(mode="PART" if self.partial else "FULL")
        self.command = bytes(printer.output)

    def emit(self, values: list[str], setup: PrinterSetup) -> bytes:
        return self.command
