"""Validation of ZPL templates: the template's own commands, and the label its sample data renders.

Two passes, both before a version is stored or published:

- `check_template_commands(source)` reads the template source with every `{{ ... }}` masked as a
  value and every `{% ... %}` / `{# ... #}` masked as template code, so its errors name the line and
  column the admin typed: unknown commands, control (`~`) commands, prefix changes, a command name
  built by the template, a value inserted into a field without `^FH`.
- `check_label(zpl, width_dots, height_dots)` reads the rendered sample: exactly balanced
  `^XA`/`^XZ`, every field opened, filled and closed, `^CI28` before the first field data,
  numeric parameters that are numbers, every `^FO`/`^FT` position, box and field block inside
  the label, and every barcode with its quiet zones inside the label (`barcode_fit`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dockside.errors import TemplateError
from dockside.labels.barcode_fit import check_barcodes_fit
from dockside.labels.zpl_syntax import FORMAT_COMMANDS, PREFIX_CHANGERS, ZplCommand, ZplSyntaxError, tokenize

__all__ = ["check_label", "check_template_commands", "mask_template_code"]

VALUE_MASK = "\x01"
CODE_MASK = "\x02"
_OPENERS = re.compile(r"\{\{|\{%|\{#")
_RAW_TAG = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_ENDRAW_TAG = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_NO_PARAMS = frozenset({"XA", "XZ", "FS", "FR", "LR"})
_ORIENTATIONS = "NRIB"
_SUPPORTED = ", ".join(f"^{name}" for name in sorted(FORMAT_COMMANDS))


def _closing(source: str, start: int, closer: str) -> int:
    """The offset just past `closer`, skipping quoted strings; the end of `source` if unclosed."""
    i, quote = start, ""
    while i < len(source):
        char = source[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif source.startswith(closer, i):
            return i + len(closer)
        i += 1
    return len(source)


def mask_template_code(source: str) -> str:
    """`source` with each Jinja construct replaced, character for character, by a mask.

    Line breaks stay, so line and column in the masked text are line and column in the source.
    """
    out = list(source)

    def fill(start: int, end: int, mask: str) -> None:
        for i in range(start, end):
            if out[i] != "\n":
                out[i] = mask

    pos = 0
    while (found := _OPENERS.search(source, pos)) is not None:
        start, opener = found.start(), found.group()
        if opener == "{#":
            end = source.find("#}", start + 2)
            end = len(source) if end < 0 else end + 2
            fill(start, end, CODE_MASK)
        elif opener == "{{":
            end = _closing(source, start + 2, "}}")
            fill(start, end, VALUE_MASK)
        else:
            end = _closing(source, start + 2, "%}")
            fill(start, end, CODE_MASK)
            if _RAW_TAG.fullmatch(source, start, end):
                closing = _ENDRAW_TAG.search(source, end)
                if closing is not None:
                    fill(closing.start(), closing.end(), CODE_MASK)
                    end = closing.end()
        pos = end
    return "".join(out)


def _static_params(command: ZplCommand) -> str:
    """A command's parameters without template code that follows it (`{% ... %}`) and line breaks."""
    return command.params.replace(CODE_MASK, "").strip("\r\n ")


def _command_rule(command: ZplCommand, where: str) -> str | None:
    """Why a command may not appear in a label template at all, or None if it may."""
    shown = f"{command.prefix}{command.name}"
    if command.name in PREFIX_CHANGERS:
        return (
            f"{where}: {shown} changes the ZPL command or delimiter characters, which would let field data "
            f"be read as commands: remove it and use the default ^, ~ and ,"
        )
    if command.prefix == "~":
        return (
            f"{where}: {shown} is a control command (the printer acts on it at once: reset, status, "
            f"download); a label template may not send control commands: remove it"
        )
    if command.name not in FORMAT_COMMANDS:
        return f"{where}: unknown or unsupported ZPL command {shown}: use one of {_SUPPORTED}, or remove it"
    if command.name == "FH" and _static_params(command) not in ("", "_"):
        return (
            f"{where}: {command.text} changes the hex escape character; Dockside escapes values with '_': "
            f"write ^FH without a parameter"
        )
    return None


def check_template_commands(source: str) -> None:
    """Refuse commands a template may not use, with the line and column in the template source."""
    masked = mask_template_code(source)
    try:
        _, commands = tokenize(masked)
    except ZplSyntaxError as exc:
        snippet = masked[exc.offset : exc.offset + 3]
        if VALUE_MASK in snippet or CODE_MASK in snippet:
            message = (
                f"line {exc.line}, column {exc.column}: a ZPL command name is built by the template; "
                f"write command names out (e.g. ^FD) and insert values only into parameters and field data"
            )
        else:
            message = f"line {exc.line}, column {exc.column}: {exc.message}"
        raise TemplateError(message, code="invalid_zpl", line=exc.line, column=exc.column) from None
    has_hex = False
    for command in commands:
        where = f"line {command.line}, column {command.column}"
        problem = _command_rule(command, where)
        if problem is None and command.name == "CI" and _static_params(command) != "28":
            problem = f"{where}: {command.text} selects another encoding: write ^CI28 (UTF-8) instead"
        if problem is None and command.name in ("FO", "FT", "FS"):
            has_hex = False
        elif command.name == "FH":
            has_hex = True
        elif command.name == "FD" and VALUE_MASK in command.params and not has_hex:
            problem = (
                f"{where}: this field inserts a value but has no ^FH before ^FD, so the value would not be "
                f"escaped: write ^FH^FD"
            )
        if problem is not None:
            raise TemplateError(problem, code="invalid_zpl", line=command.line, column=command.column)


class _LabelChecker:
    """Walks the commands of a rendered label, keeping the state the checks need."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.label_open: ZplCommand | None = None
        self.labels = 0
        self.field_open: ZplCommand | None = None
        self.field_filled = False
        self.home = (0, 0)
        self.utf8 = False

    def fail(self, command: ZplCommand, message: str) -> TemplateError:
        return TemplateError(
            f"line {command.line}, column {command.column} of the rendered sample label "
            f"({command.text[:40]}): {message}",
            code="invalid_zpl",
            line=command.line,
            column=command.column,
        )

    def ints(
        self, command: ZplCommand, names: tuple[str, ...], required: int = 0, args: list[str] | None = None
    ) -> list[int]:
        """Parameters as integers (missing ones are 0 unless among the first `required`).

        `args` defaults to the command's parameters; pass a slice of them to check a later group.
        """
        args = command.args() if args is None else args
        values = []
        for index, name in enumerate(names):
            raw = args[index] if index < len(args) else ""
            if raw == "":
                if index < required:
                    raise self.fail(command, f"^{command.name} needs {name}: write it as a number")
                values.append(0)
                continue
            if not re.fullmatch(r"-?\d{1,6}", raw):
                raise self.fail(command, f"^{command.name}'s {name} must be a whole number, not {raw[:20]!r}")
            values.append(int(raw))
        return values

    def choice(
        self, command: ZplCommand, index: int, name: str, allowed: str, args: list[str] | None = None
    ) -> None:
        args = command.args() if args is None else args
        raw = args[index] if index < len(args) else ""
        if raw and (len(raw) != 1 or raw.upper() not in allowed):
            raise self.fail(
                command, f"^{command.name}'s {name} must be one of {', '.join(allowed)}, not {raw[:20]!r}"
            )

    def inside(self, command: ZplCommand, x: int, y: int, what: str) -> None:
        x, y = x + self.home[0], y + self.home[1]
        if not 0 <= x < self.width:
            raise self.fail(
                command,
                f"{what} starts at x={x}, outside the {self.width}-dot-wide label: "
                f"use x from 0 to {self.width - 1}",
            )
        if not 0 <= y <= self.height - (0 if command.name == "FT" else 1):
            raise self.fail(
                command,
                f"{what} starts at y={y}, outside the {self.height}-dot-high label: "
                f"use y from 0 to {self.height - 1}",
            )

    def check(self, command: ZplCommand) -> None:
        problem = _command_rule(command, "this command")
        if problem is not None:
            raise self.fail(command, problem.removeprefix("this command: "))
        name = command.name
        if name in _NO_PARAMS and command.params.strip():
            raise self.fail(
                command,
                f"the text {command.params.strip()[:30]!r} after ^{name} belongs to no command: "
                f"put it in a field (^FO..^FD..^FS) or remove it",
            )
        if name == "XA":
            if self.label_open is not None:
                raise self.fail(
                    command, "^XA opens a label inside another: end the previous label with ^XZ first"
                )
            self.label_open, self.home = command, (0, 0)
            self.labels += 1
            return
        if self.label_open is None and name != "FX":
            raise self.fail(command, f"^{name} is outside a label: put it between ^XA and ^XZ")
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, command)

    def finish(self) -> None:
        if self.label_open is not None:
            raise self.fail(self.label_open, "this label is never closed: end it with ^XZ")
        if self.labels == 0:
            raise TemplateError(
                "the template renders no label: start it with ^XA and end it with ^XZ", code="invalid_zpl"
            )


def _end_label(checker: _LabelChecker, command: ZplCommand) -> None:
    if checker.field_open is not None:
        raise checker.fail(checker.field_open, "this field is never closed: end it with ^FS")
    checker.label_open = None


def _open_field(checker: _LabelChecker, command: ZplCommand) -> None:
    if checker.field_open is not None:
        raise checker.fail(
            checker.field_open, "this field is not closed before the next one: end it with ^FS"
        )
    x, y = checker.ints(command, ("x", "y"))
    checker.choice(command, 2, "justification", "012")
    checker.inside(command, x, y, "the field")
    checker.field_open, checker.field_filled = command, False


def _field_data(checker: _LabelChecker, command: ZplCommand) -> None:
    if checker.field_open is None:
        raise checker.fail(command, "^FD has no position: start the field with ^FO or ^FT")
    if not checker.utf8:
        raise checker.fail(
            command, "field data before ^CI28: put ^CI28 right after ^XA so every script prints"
        )
    if len(command.params.encode("utf-8")) > 3072:
        raise checker.fail(command, "field data is longer than the 3,072 bytes a ZPL field holds: shorten it")
    checker.field_filled = True


def _close_field(checker: _LabelChecker, command: ZplCommand) -> None:
    if checker.field_open is None:
        raise checker.fail(command, "^FS closes no field: remove it or open the field with ^FO or ^FT")
    if not checker.field_filled:
        raise checker.fail(checker.field_open, "this field has nothing to print: add ^FD data, ^GB or ^GC")
    checker.field_open = None


def _in_field(checker: _LabelChecker, command: ZplCommand) -> None:
    if checker.field_open is None:
        raise checker.fail(command, f"^{command.name} must be inside a field: put ^FO or ^FT before it")


def _font(checker: _LabelChecker, command: ZplCommand) -> None:
    params = command.params.strip("\r\n")
    if not params or not params[0].isalnum():
        raise checker.fail(command, "^A needs a font name (a letter or digit), e.g. ^A0N,30,30")
    args = [part.strip() for part in params[1:].split(",")]
    checker.choice(command, 0, "orientation", _ORIENTATIONS, args)
    checker.ints(command, ("height", "width"), args=args[1:])


def _default_font(checker: _LabelChecker, command: ZplCommand) -> None:
    args = command.args()
    if args[0] and (len(args[0]) != 1 or not args[0].isalnum()):
        raise checker.fail(command, "^CF needs a font name (a letter or digit), e.g. ^CF0,30")
    checker.ints(command, ("height", "width"), args=args[1:])


def _encoding(checker: _LabelChecker, command: ZplCommand) -> None:
    if command.params.strip("\r\n ") != "28":
        raise checker.fail(
            command, "select UTF-8 with ^CI28; other encodings misprint names in other scripts"
        )
    checker.utf8 = True


def _print_width(checker: _LabelChecker, command: ZplCommand) -> None:
    (width,) = checker.ints(command, ("width",), required=1)
    if not 1 <= width <= checker.width:
        raise checker.fail(
            command, f"^PW{width} is not within the {checker.width}-dot-wide label: use ^PW{checker.width}"
        )


def _label_length(checker: _LabelChecker, command: ZplCommand) -> None:
    (length,) = checker.ints(command, ("length",), required=1)
    if not 1 <= length <= checker.height:
        raise checker.fail(
            command, f"^LL{length} is not within the {checker.height}-dot-high label: use ^LL{checker.height}"
        )


def _label_home(checker: _LabelChecker, command: ZplCommand) -> None:
    x, y = checker.ints(command, ("x", "y"))
    checker.home = (0, 0)
    checker.inside(command, x, y, "the label home")
    checker.home = (x, y)


def _box(checker: _LabelChecker, command: ZplCommand) -> None:
    _in_field(checker, command)
    assert checker.field_open is not None
    width, height, thickness = checker.ints(command, ("width", "height", "thickness"))
    checker.choice(command, 3, "colour", "BW")
    origin_x, origin_y = checker.ints(checker.field_open, ("x", "y"))
    right = checker.home[0] + origin_x + max(width, thickness, 1)
    bottom = checker.home[1] + origin_y + max(height, thickness, 1)
    if right > checker.width or bottom > checker.height:
        raise checker.fail(
            command,
            f"the box reaches x={right}, y={bottom}, past the {checker.width}x{checker.height}-dot label: "
            f"make it smaller or move its ^FO",
        )
    checker.field_filled = True


def _circle(checker: _LabelChecker, command: ZplCommand) -> None:
    _in_field(checker, command)
    assert checker.field_open is not None
    diameter, _ = checker.ints(command, ("diameter", "thickness"), required=1)
    origin_x, origin_y = checker.ints(checker.field_open, ("x", "y"))
    if (
        checker.home[0] + origin_x + diameter > checker.width
        or checker.home[1] + origin_y + diameter > checker.height
    ):
        raise checker.fail(command, "the circle reaches past the label: make it smaller or move its ^FO")
    checker.field_filled = True


def _field_block(checker: _LabelChecker, command: ZplCommand) -> None:
    _in_field(checker, command)
    assert checker.field_open is not None
    width, _, _ = checker.ints(command, ("width", "lines", "line spacing"), required=1)
    checker.choice(command, 3, "justification", "LCRJ")
    origin_x, _ = checker.ints(checker.field_open, ("x", "y"))
    if checker.home[0] + origin_x + width > checker.width:
        raise checker.fail(
            command,
            f"the text block is {width} dots wide from x={checker.home[0] + origin_x}, past the "
            f"{checker.width}-dot-wide label: "
            f"make it at most {checker.width - checker.home[0] - origin_x} wide",
        )


def _barcode_defaults(checker: _LabelChecker, command: ZplCommand) -> None:
    args = command.args()
    (module,) = checker.ints(command, ("module width",))
    if args[0] and not 1 <= module <= 10:
        raise checker.fail(command, "^BY's module width must be 1 to 10 dots")
    if len(args) > 1 and args[1] and not re.fullmatch(r"[23](\.\d)?", args[1]):
        raise checker.fail(command, "^BY's wide-to-narrow ratio must be 2.0 to 3.0")
    checker.ints(command, ("bar height",), args=args[2:])


# Where each linear barcode keeps its height and its Y/N flags: ^BCo,h,f,g,e and ^B3o,e,h,f,g.
_BARCODE_LAYOUT = {"BC": (1, (2, 3, 4)), "B3": (2, (1, 3, 4))}


def _linear_barcode(checker: _LabelChecker, command: ZplCommand) -> None:
    _in_field(checker, command)
    args = command.args()
    checker.choice(command, 0, "orientation", _ORIENTATIONS)
    height_at, flags_at = _BARCODE_LAYOUT[command.name]
    checker.ints(command, ("bar height",), args=args[height_at:])
    for position in flags_at:
        checker.choice(command, position, "flag", "YN")


def _qr(checker: _LabelChecker, command: ZplCommand) -> None:
    _in_field(checker, command)
    checker.choice(command, 0, "orientation", "N")
    checker.choice(command, 1, "model", "12")
    args = command.args()
    if len(args) > 2 and args[2] and (not args[2].isdigit() or not 1 <= int(args[2]) <= 10):
        raise checker.fail(command, "^BQ's magnification must be 1 to 10")


def _quantity(checker: _LabelChecker, command: ZplCommand) -> None:
    (quantity,) = checker.ints(command, ("quantity",), required=1)
    if not 1 <= quantity <= 99_999:
        raise checker.fail(command, "^PQ's quantity must be 1 to 99,999 labels")


_HANDLERS: dict[str, Callable[[_LabelChecker, ZplCommand], None]] = {
    "XZ": _end_label,
    "FO": _open_field,
    "FT": _open_field,
    "FD": _field_data,
    "FS": _close_field,
    "FH": _in_field,
    "FR": _in_field,
    "A": _font,
    "CF": _default_font,
    "CI": _encoding,
    "PW": _print_width,
    "LL": _label_length,
    "LH": _label_home,
    "GB": _box,
    "GC": _circle,
    "FB": _field_block,
    "BY": _barcode_defaults,
    "BC": _linear_barcode,
    "B3": _linear_barcode,
    "BQ": _qr,
    "PQ": _quantity,
}


def check_label(zpl: str, *, width_dots: int, height_dots: int) -> None:
    """Refuse a rendered label that is malformed or does not fit a `width_dots` x `height_dots` label."""
    try:
        leading, commands = tokenize(zpl)
    except ZplSyntaxError as exc:
        raise TemplateError(
            f"the rendered sample label is not valid ZPL: {exc.message}",
            code="invalid_zpl",
            line=exc.line,
            column=exc.column,
        ) from None
    if leading.strip():
        raise TemplateError(
            f"the label starts with text that is no command ({leading.strip()[:30]!r}): start it with ^XA",
            code="invalid_zpl",
            line=1,
            column=1,
        )
    checker = _LabelChecker(width_dots, height_dots)
    for command in commands:
        checker.check(command)
    checker.finish()
    check_barcodes_fit(zpl, width_dots=width_dots, height_dots=height_dots)
