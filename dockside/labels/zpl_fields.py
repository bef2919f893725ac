"""Reading rendered ZPL back into labels and fields: what each field prints, where, and how.

The preview rasteriser draws from this, and the tests use it to prove that a value lands in its own
field and nowhere else. It reads the command set of `zpl_syntax.FORMAT_COMMANDS` and expects ZPL
that passed `zpl_check.check_label`; it does not validate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dockside.labels.zpl_syntax import ZplCommand, tokenize

__all__ = ["Barcode", "Box", "FieldBlock", "Font", "ZplField", "ZplLabel", "decode_field_data", "read_labels"]

_HEX = re.compile(r"_([0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Font:
    """A ZPL font: name (`0` is the scalable one), orientation, height and width in dots."""

    name: str = "0"
    orientation: str = "N"
    height: int = 30
    width: int = 0


@dataclass(frozen=True, slots=True)
class FieldBlock:
    """`^FB`: text wrapped into `width` dots, at most `max_lines` lines, justified L, C, R or J."""

    width: int
    max_lines: int = 1
    line_spacing: int = 0
    justify: str = "L"


@dataclass(frozen=True, slots=True)
class Barcode:
    """A barcode field: `code128`, `code39` or `qr`, with its size parameters."""

    kind: str
    orientation: str = "N"
    height: int = 10
    module_width: int = 2
    interpretation: bool = True
    above: bool = False
    magnification: int = 2


@dataclass(frozen=True, slots=True)
class Box:
    """`^GB` (or `^GC` when `circle`): a box, line or circle."""

    width: int
    height: int
    thickness: int = 1
    colour: str = "B"
    rounding: int = 0
    circle: bool = False


@dataclass(frozen=True, slots=True)
class ZplField:
    """One field of a label: its origin in dots and what it prints."""

    x: int
    y: int
    typeset: bool
    font: Font
    data: str | None = None
    hex_escaped: bool = False
    block: FieldBlock | None = None
    barcode: Barcode | None = None
    box: Box | None = None
    reverse: bool = False
    line: int = 0

    @property
    def text(self) -> str:
        """What a person reads: field data without barcode mode prefixes and invocation codes."""
        data = self.data or ""
        if self.barcode is not None and self.barcode.kind == "qr":
            return data[3:] if re.match(r"[HQML][AM],", data) else data
        if self.barcode is not None and self.barcode.kind == "code128":
            return re.sub(r">(.)", lambda found: _INVOCATION_TEXT.get(found.group(1), ""), data)
        return data


# The invocation codes that stand for a character a person reads (Zebra's `^BC` table).
_INVOCATION_TEXT = {"<": "^", "0": ">", "=": "~"}


@dataclass(slots=True)
class ZplLabel:
    """One `^XA`..`^XZ` format: size, fields in order, copies, and whole-label settings."""

    width: int
    height: int
    fields: list[ZplField] = field(default_factory=list)
    quantity: int = 1
    reverse: bool = False
    inverted: bool = False
    commands: list[str] = field(default_factory=list)


def decode_field_data(data: str, hex_escaped: bool) -> str:
    """Field data as the printer reads it: `_XX` hex escapes become bytes when `^FH` is on (UTF-8)."""
    data = data.replace("\r", "").replace("\n", "")
    if not hex_escaped or "_" not in data:
        return data
    raw = bytearray()
    last = 0
    for found in _HEX.finditer(data):
        raw += data[last : found.start()].encode("utf-8", "surrogatepass")
        raw.append(int(found.group(1), 16))
        last = found.end()
    raw += data[last:].encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _int(args: list[str], index: int, default: int) -> int:
    raw = args[index] if index < len(args) else ""
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def _text(args: list[str], index: int, default: str) -> str:
    raw = args[index].upper() if index < len(args) else ""
    return raw or default


def _flag(args: list[str], index: int, default: bool) -> bool:
    raw = args[index].upper() if index < len(args) else ""
    return default if raw not in ("Y", "N") else raw == "Y"


class _Reader:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.labels: list[ZplLabel] = []
        self.label: ZplLabel | None = None
        self.default_font = Font()
        self.home = (0, 0)
        self.module, self.ratio_height = 2, 10
        self.pending: ZplField | None = None

    def command(self, command: ZplCommand) -> None:
        name, args = command.name, command.args()
        if name == "XA":
            self.label = ZplLabel(self.width, self.height)
            self.home = (0, 0)
            self.labels.append(self.label)
        if self.label is None:
            return
        self.label.commands.append(f"{command.prefix}{name}")
        if name in ("FO", "FT"):
            self.pending = ZplField(
                x=_int(args, 0, 0) + self.home[0],
                y=_int(args, 1, 0) + self.home[1],
                typeset=name == "FT",
                font=self.default_font,
                line=command.line,
            )
        elif name == "XZ":
            self.label = None
        elif name == "PW":
            self.label.width = _int(args, 0, self.width)
        elif name == "LL":
            self.label.height = _int(args, 0, self.height)
        elif name == "LH":
            self.home = (_int(args, 0, 0), _int(args, 1, 0))
        elif name == "LR":
            self.label.reverse = True
        elif name == "PO":
            self.label.inverted = command.params.strip().upper().startswith("I")
        elif name == "PQ":
            self.label.quantity = _int(args, 0, 1)
        elif name == "CF":
            base = self.default_font
            height = _int(args, 1, base.height)
            self.default_font = Font(args[0] or base.name, base.orientation, height, _int(args, 2, 0))
        elif name == "BY":
            self.module = _int(args, 0, self.module)
            self.ratio_height = _int(args, 2, self.ratio_height)
        elif self.pending is not None:
            self.field_command(command, name, args)

    def field_command(self, command: ZplCommand, name: str, args: list[str]) -> None:
        pending = self.pending
        assert pending is not None
        assert self.label is not None
        if name == "A":
            params = command.params.strip("\r\n")
            rest = [part.strip() for part in params[1:].split(",")]
            orientation = (rest[0] or pending.font.orientation).upper()
            height = _int(rest, 1, pending.font.height)
            self.pending = replace(
                pending, font=Font(params[:1] or "0", orientation, height, _int(rest, 2, 0))
            )
        elif name == "FH":
            self.pending = replace(pending, hex_escaped=True)
        elif name == "FR":
            self.pending = replace(pending, reverse=True)
        elif name == "FB":
            block = FieldBlock(
                _int(args, 0, 0), max(1, _int(args, 1, 1)), _int(args, 2, 0), _text(args, 3, "L")
            )
            self.pending = replace(pending, block=block)
        elif name in ("BC", "B3"):
            height_at, interpretation_at, above_at = (1, 2, 3) if name == "BC" else (2, 3, 4)
            barcode = Barcode(
                kind="code128" if name == "BC" else "code39",
                orientation=(args[0] or "N").upper(),
                height=_int(args, height_at, self.ratio_height),
                module_width=self.module,
                interpretation=_flag(args, interpretation_at, True),
                above=_flag(args, above_at, False),
            )
            self.pending = replace(pending, barcode=barcode)
        elif name == "BQ":
            barcode = Barcode(kind="qr", magnification=_int(args, 2, 2))
            self.pending = replace(pending, barcode=barcode)
        elif name == "GB":
            thickness = _int(args, 2, 1)
            box = Box(
                width=max(_int(args, 0, 1), thickness),
                height=max(_int(args, 1, 1), thickness),
                thickness=thickness,
                colour=_text(args, 3, "B"),
                rounding=_int(args, 4, 0),
            )
            self.pending = replace(pending, box=box)
        elif name == "GC":
            diameter = _int(args, 0, 3)
            box = Box(diameter, diameter, _int(args, 1, 1), _text(args, 2, "B"), circle=True)
            self.pending = replace(pending, box=box)
        elif name == "FD":
            self.pending = replace(pending, data=decode_field_data(command.params, pending.hex_escaped))
        elif name == "FS":
            self.label.fields.append(pending)
            self.pending = None


def read_labels(zpl: str | bytes, *, width_dots: int, height_dots: int) -> list[ZplLabel]:
    """The labels in a rendered ZPL stream, each with its fields in print order."""
    text = zpl.decode("utf-8", "replace") if isinstance(zpl, bytes) else zpl
    _, commands = tokenize(text)
    reader = _Reader(width_dots, height_dots)
    for command in commands:
        reader.command(command)
    return reader.labels
