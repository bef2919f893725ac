"""Whether every barcode of a ZPL label fits on it, quiet zones included, measured as the printer draws it.

A Code 128 symbol is 11 modules a character plus 13 for the stop, and a scanner needs ten modules
of white either side (ISO/IEC 15417); each module is `^BY` dots wide. A symbol that runs past the
label's edge (or its `^PW` print width) prints cut off and does not scan, and nothing else in
validation would notice: the field's origin is on the label. So validation measures each symbol
with `barcode_modules.zebra_code128`, the same encoder the preview draws with:

- `check_barcodes_fit(zpl, ...)` for the rendered sample label (`zpl_check.check_label` calls it);
- `check_longest_values(render, sample, ...)` renders the template again with every value a
  barcode may carry at the longest an order may hold it (`LONGEST_VALUES`, bounds read from the
  models in `dockside.orders` and `dockside.shipping.parcels`), letters and digits, and checks
  those labels too, so a template that fits its sample but not a 40-character tracking number is
  refused at publish, not discovered at a packing station.

QR codes are measured too (modules times magnification, four modules of quiet zone); Code 39 is
measured with python-barcode's patterns (a 3:1 ratio).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from barcode.codex import Code128, Gs1_128  # type: ignore[import-untyped]
from pydantic import BaseModel

from dockside.errors import TemplateError
from dockside.labels.barcode_modules import CODE128_QUIET_MODULES, code39_modules, qr_modules, zebra_code128
from dockside.labels.zpl_fields import decode_field_data
from dockside.labels.zpl_syntax import ZplCommand, ZplSyntaxError, tokenize
from dockside.orders import Address, Order
from dockside.shipping.parcels import ExpectedParcel

__all__ = [
    "LONGEST_VALUES",
    "BarcodeExtent",
    "LongestValue",
    "check_barcodes_fit",
    "check_longest_values",
    "measure_barcodes",
]

QR_QUIET_MODULES = 4
# Zebra prints a ^FO-placed QR code about ten dots below its origin (as the preview does).
_QR_TOP_OFFSET = 10
_KINDS = {"BC": "Code 128", "B3": "Code 39", "BQ": "QR code"}


def _max_length(model: type[BaseModel], field: str) -> int:
    """The `max_length` a pydantic model puts on a text field: the bound an order is validated with."""
    for rule in model.model_fields[field].metadata:
        bound = getattr(rule, "max_length", None)
        if isinstance(bound, int):
            return bound
    raise LookupError(f"{model.__name__}.{field} has no max_length")


@dataclass(frozen=True, slots=True)
class LongestValue:
    """A value a barcode may carry: where it is in the label context, and how long it may be.

    `digits_only` values (an SSCC) are tried as digits alone; the others as letters (the widest
    Code 128, subset B throughout) and as digits (what subset C packs).
    """

    path: tuple[str, ...]
    length: int
    digits_only: bool = False


LONGEST_VALUES: tuple[LongestValue, ...] = (
    LongestValue(("shipment", "tracking"), _max_length(ExpectedParcel, "tracking_number")),
    LongestValue(("shipment", "sscc"), 18, digits_only=True),
    LongestValue(("ship_to", "postal_code"), _max_length(Address, "postal_code")),
    LongestValue(("order", "ship_to", "postal_code"), _max_length(Address, "postal_code")),
    LongestValue(("order", "po_number"), _max_length(Order, "po_number")),
    LongestValue(("order", "order_ref"), _max_length(Order, "order_ref")),
)


@dataclass(frozen=True, slots=True)
class BarcodeExtent:
    """Where one barcode of a rendered label prints: the field command, its size and its span in dots.

    `start` and `end` are the dots the symbol with its quiet zones covers along the direction the
    bars are read (x for N and I, y for R and B); `limit` is the label's size in that direction.
    """

    command: ZplCommand
    kind: str
    text: str
    module: int
    modules: int
    quiet_modules: int
    start: int
    end: int
    limit: int
    across: str
    limit_name: str

    @property
    def symbol_dots(self) -> int:
        """The symbol's width in dots without quiet zones."""
        return self.modules * self.module

    @property
    def fits(self) -> bool:
        """Whether the symbol and its quiet zones are on the label."""
        return self.start >= 0 and self.end <= self.limit


class _Walker:
    """Follows the label state a barcode's size depends on: ^BY, ^PW, ^LH and the open field."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.print_width = width
        self.module = 2
        self.home = (0, 0)
        self.origin: ZplCommand | None = None
        self.barcode: ZplCommand | None = None
        self.hex = False
        self.extents: list[BarcodeExtent] = []

    def command(self, command: ZplCommand) -> None:
        name, args = command.name, command.args()
        if name == "XA":
            self.print_width, self.home, self.module = self.width, (0, 0), 2
        elif name == "PW":
            self.print_width = min(self.width, _int(args, 0, self.width))
        elif name == "LH":
            self.home = (_int(args, 0, 0), _int(args, 1, 0))
        elif name == "BY":
            self.module = max(1, _int(args, 0, self.module))
        elif name in ("FO", "FT"):
            self.origin, self.barcode, self.hex = command, None, False
        elif name == "FH":
            self.hex = True
        elif name in _KINDS and self.origin is not None:
            self.barcode = command
        elif name == "FD" and self.barcode is not None and self.origin is not None:
            extent = self.measure(self.origin, self.barcode, decode_field_data(command.params, self.hex))
            if extent is not None:
                self.extents.append(extent)
        elif name == "FS":
            self.origin, self.barcode = None, None

    def measure(self, origin: ZplCommand, barcode: ZplCommand, data: str) -> BarcodeExtent | None:
        args = barcode.args()
        x = _int(origin.args(), 0, 0) + self.home[0]
        y = _int(origin.args(), 1, 0) + self.home[1]
        if barcode.name == "BQ":
            magnification = max(1, min(10, _int(args, 2, 2)))
            text = data[3:] if data[:3] in {f"{ec}{m}," for ec in "HQML" for m in "AM"} else data
            if not text:
                return None
            size = len(qr_modules(text, data[:1].upper()))
            quiet = QR_QUIET_MODULES * magnification
            return BarcodeExtent(
                barcode, "QR code", text, magnification, size, QR_QUIET_MODULES,
                x - quiet, x + size * magnification + quiet, self.print_width, "wide", "wide",
            )  # fmt: skip
        orientation = (args[0] or "N").upper()[:1]
        if barcode.name == "BC":
            modules, text = _code128_size(data, (args[5] if len(args) > 5 else "").upper()[:1] or "N")
        else:
            text = data
            try:
                modules = len(code39_modules(data))
            except ValueError:
                modules = 16 * (len(data) + 2)
        if not text:
            return None
        quiet = CODE128_QUIET_MODULES * self.module
        if orientation in ("R", "B"):
            start, limit, across, limit_name = y, self.height, "high", "high"
        else:
            start, limit, across, limit_name = x, self.print_width, "wide", "wide"
        return BarcodeExtent(
            barcode, _KINDS[barcode.name], text, self.module, modules, CODE128_QUIET_MODULES,
            start - quiet, start + modules * self.module + quiet, limit, across, limit_name,
        )  # fmt: skip


def _code128_size(data: str, mode: str) -> tuple[int, str]:
    """A `^BC` symbol's width in modules and its text, for field data in ^BC mode `mode`.

    Mode N (invocation codes) is measured exactly. In modes A (automatic), D (GS1: the printer
    strips parentheses and spaces and starts with FNC1) and U (UCC case: 19 digits and a check
    digit) the printer picks the subsets itself; python-barcode's encoder, which also switches to
    subset C for runs of four or more digits, stands in for it.
    """
    try:
        if mode == "N":
            symbol = zebra_code128(data)
            return symbol.width_modules, symbol.text.replace("\x1d", "")
        if mode in ("D", "U"):
            text = re.sub(r"[() ]", "", data) if mode == "D" else (data + "0" * 19)[:19] + "0"
            return 11 * (len(Gs1_128(text).encoded) + 1) + 13, text
        if mode == "A":
            return 11 * (len(Code128(data).encoded) + 1) + 13, data
    except Exception:  # python-barcode raises its own error types without a common base
        return _subset_b_size(data)
    return _subset_b_size(data)


def _subset_b_size(data: str) -> tuple[int, str]:
    """What cannot be encoded is measured as subset B: one symbol a character."""
    return 11 * (len(data) + 2) + 13, data


def _int(args: list[str], index: int, default: int) -> int:
    raw = args[index] if index < len(args) else ""
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def measure_barcodes(zpl: str, *, width_dots: int, height_dots: int) -> list[BarcodeExtent]:
    """Every barcode of a rendered ZPL stream, measured; a stream that does not tokenize has none."""
    try:
        _, commands = tokenize(zpl)
    except ZplSyntaxError:
        return []
    walker = _Walker(width_dots, height_dots)
    for command in commands:
        walker.command(command)
    return walker.extents


def _advice(extent: BarcodeExtent) -> str:
    if extent.kind == "QR code":
        return "use a smaller magnification (^BQ's third parameter) or move its ^FO"
    room = extent.limit - 2 * extent.quiet_modules * extent.module
    if extent.kind == "Code 39":
        return "use Code 128 (^BC), a smaller module width (^BY) or move its ^FO"
    widest = max(1, extent.limit // (extent.modules + 2 * extent.quiet_modules))
    smaller = (
        f"a module width of at most {widest} (^BY{widest}) fits it"
        if widest < extent.module
        else "move its ^FO so the quiet zones stay on the label"
    )
    if extent.modules * 1 > room:
        smaller = "even ^BY1 is too wide"
    return (
        f"{smaller}; pack digit runs in subset C (start with >; or switch with >5, two digits a "
        f"character) and keep the symbol centred"
    )


def _refusal(extent: BarcodeExtent, where: str) -> TemplateError:
    command = extent.command
    shown = extent.text if len(extent.text) <= 40 else extent.text[:37] + "..."
    quiet = extent.quiet_modules * extent.module
    if extent.start < 0:
        edge = f"starts {-extent.start} dots before the label's edge"
    else:
        edge = f"ends at {extent.end}, {extent.end - extent.limit} dots past the edge"
    message = (
        f"line {command.line}, column {command.column} of {where} ({command.text[:40]}): the {extent.kind} "
        f"for {shown!r} is {extent.symbol_dots} dots {extent.across} ({extent.modules} modules of "
        f"{extent.module} dots) plus {quiet} dots of quiet zone either side, "
        f"{extent.end - extent.start} dots in all; it {edge} of the {extent.limit}-dot-{extent.limit_name} "
        f"label and would not scan: {_advice(extent)}"
    )
    return TemplateError(message, code="barcode_too_wide", line=command.line, column=command.column)


def check_barcodes_fit(
    zpl: str, *, width_dots: int, height_dots: int, where: str = "the rendered sample label"
) -> None:
    """Refuse a label with a barcode (quiet zones included) that leaves the label or its ^PW."""
    for extent in measure_barcodes(zpl, width_dots=width_dots, height_dots=height_dots):
        if not extent.fits:
            raise _refusal(extent, where)


def _set(data: dict[str, Any], path: tuple[str, ...], value: str) -> bool:
    node: Any = data
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or path[-1] not in node:
        return False
    node[path[-1]] = value
    return True


def _variants(sample: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The sample with every barcode value at its longest: once as letters, once as digits."""
    variants = []
    for style, fill in (("letters", "Z"), ("digits", "9")):
        data = copy.deepcopy(dict(sample))
        changed = []
        for value in LONGEST_VALUES:
            text = "9" * value.length if value.digits_only else fill * value.length
            if _set(data, value.path, text):
                changed.append(f"{'.'.join(value.path)} ({value.length})")
        if changed:
            variants.append((f"the label with the longest values as {style}: {', '.join(changed)}", data))
    return variants


def check_longest_values(
    render: Callable[[Mapping[str, Any]], str],
    sample_data: Mapping[str, Any],
    *,
    width_dots: int,
    height_dots: int,
) -> None:
    """Render the template with the longest values orders may carry; refuse a barcode that leaves the label.

    `render` turns a context into ZPL text (the template under validation, within its budget).
    """
    for where, data in _variants(sample_data):
        check_barcodes_fit(render(data), width_dots=width_dots, height_dots=height_dots, where=where)
