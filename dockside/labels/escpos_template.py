"""ESC/POS templates: a declarative JSON list of operations whose text is sandboxed Jinja2.

    {"codepage": "CP858",
     "operations": [
       {"op": "text", "text": "Order {{ order.order_ref }}", "align": "center", "bold": true, "width": 2},
       {"op": "each", "items": "lines", "as": "line", "do": [
         {"op": "columns", "cells": [{"text": "{{ line.sku }}", "width": 36},
                                     {"text": "{{ line.qty }}", "width": 12, "align": "right"}]}]},
       {"op": "barcode", "data": "{{ order.order_ref }}"},
       {"op": "cut"}]}

Operations: text, columns, rule, barcode (Code 128), qr, image (a PNG in base64), feed, cut, and
each (repeat operations for every item of a list). Any operation may carry `"when": "expression"`.

The structure is fixed by the JSON: data only fills values. The whole list compiles into one
Jinja2 program that prints a record separator and the operation's number before each operation and
a unit separator before each value; values go through `escpos_value`, which turns every control
character (those separators included) into a space, so data can neither add nor split operations.
One Jinja2 render per slip keeps rendering well under the pack path's budget.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import nodes
from PIL import Image, UnidentifiedImageError

from dockside.errors import TemplateError
from dockside.labels.escpos_ops import (
    BarcodeOp,
    ColumnsOp,
    CutOp,
    EscposOp,
    FeedOp,
    ImageOp,
    PrinterSetup,
    QrOp,
    RuleOp,
    TextOp,
    escpos_value,
)
from dockside.labels.escpos_raster import slip_height
from dockside.labels.language import CompiledTemplate, LabelLanguage
from dockside.labels.render_budget import (
    STATION_BUDGET,
    VALIDATION_BUDGET,
    RenderBudget,
    start_render,
    stop_render,
)
from dockside.labels.template_sandbox import (
    LabelEnvironment,
    add_turn_weight,
    check_sample_paths,
    compile_metered,
    parse_expression,
    parse_template,
    render_text,
)

__all__ = ["EscposTemplate", "compile_escpos", "validate_escpos"]

RECORD = "\x1e"
UNIT = "\x1f"
MAX_OPERATIONS = 500
MAX_SLIP_BYTES = 256 * 1024
MAX_IMAGE_BASE64 = 96 * 1024
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LOCATION = re.compile(r"^(?:(?:template )?(syntax error) at )?line \d+, column \S+: ")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,30}$")

_ENV = LabelEnvironment(finalize=escpos_value)

_COMMON = {"op", "when"}
_KEYS = {
    "text": _COMMON | {"text", "align", "bold", "underline", "width", "height"},
    "columns": _COMMON | {"cells", "bold", "underline"},
    "rule": _COMMON | {"char", "bold"},
    "barcode": _COMMON | {"data", "align", "height", "module", "text"},
    "qr": _COMMON | {"data", "align", "size", "error_correction"},
    "image": _COMMON | {"png_base64", "align"},
    "feed": _COMMON | {"lines"},
    "cut": _COMMON | {"partial"},
    "each": _COMMON | {"items", "as", "do"},
}


class _Positions:
    """Where each JSON string literal of the source is, by its path in the parsed document.

    JSON strings cannot hold a raw quote, so a regex finds every literal; walking the parsed
    document in order (dicts keep source order) pairs each literal with its path.
    """

    def __init__(self, source: str, document: Any) -> None:
        self.values: dict[tuple[str | int, ...], tuple[int, int]] = {}
        self.keys: dict[tuple[str | int, ...], tuple[int, int]] = {}
        literals = iter(re.finditer(r'"(?:[^"\\]|\\.)*"', source))
        starts = [0] + [i + 1 for i, char in enumerate(source) if char == "\n"]

        def position(offset: int) -> tuple[int, int]:
            line = bisect.bisect_right(starts, offset)
            return line, offset - starts[line - 1] + 1

        def walk(value: Any, path: tuple[str | int, ...]) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    found = next(literals, None)
                    if found is not None:
                        self.keys.setdefault(path, position(found.start()))
                        self.keys[(*path, key)] = position(found.start())
                    walk(item, (*path, key))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, (*path, index))
            elif isinstance(value, str):
                found = next(literals, None)
                if found is not None:
                    self.values[path] = position(found.start() + 1)

        walk(document, ())

    def of(self, path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        """Line and column of the value at `path` (or of the nearest enclosing thing that has one)."""
        if path in self.values:
            return self.values[path]
        for length in range(len(path), -1, -1):
            if path[:length] in self.keys:
                return self.keys[path[:length]]
        return None, None


def _unlocated(message: str) -> str:
    """`message` without its field-relative "line 1, column 5: " (a syntax error still says so)."""
    return _LOCATION.sub(lambda found: f"{found.group(1)}: " if found.group(1) else "", message)


def _shown(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _relocated(
    exc: TemplateError, path: tuple[str | int, ...], line: int | None, column: int | None
) -> TemplateError:
    """`exc`, raised about one field's own text, placed where that field stands in the JSON source."""
    return TemplateError(
        f"line {line}, column {column} ({_shown(path)}): {_unlocated(exc.message)}",
        code=exc.code,
        line=line,
        column=column,
    )


@dataclass
class _Compiler:
    """Turns the JSON document into operations and one Jinja2 tree."""

    source: str
    positions: _Positions
    setup: PrinterSetup
    ops: list[EscposOp] = field(default_factory=list)
    field_paths: list[tuple[str | int, ...]] = field(default_factory=list)

    def fail(self, path: tuple[str | int, ...], message: str, code: str = "invalid_escpos") -> TemplateError:
        line, column = self.positions.of(path)
        where = f"line {line}, column {column} ({_shown(path)})" if line else _shown(path)
        return TemplateError(f"{where}: {message}", code=code, line=line, column=column)

    def get(
        self, op: Mapping[str, Any], path: tuple[str | int, ...], key: str, kind: type, default: Any
    ) -> Any:
        value = op.get(key, default)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail((*path, key), f"{key} must be a whole number, not {value!r}")
        if kind is not int and not isinstance(value, kind):
            raise self.fail((*path, key), f"{key} must be {_KIND_NAMES[kind]}, not {json.dumps(value)[:40]}")
        return value

    def number(
        self, op: Mapping[str, Any], path: tuple[str | int, ...], key: str, low: int, high: int, default: int
    ) -> int:
        value: int = self.get(op, path, key, int, default)
        if not low <= value <= high:
            raise self.fail((*path, key), f"{key} must be from {low} to {high}, not {value}")
        return value

    def choice(
        self, op: Mapping[str, Any], path: tuple[str | int, ...], key: str, allowed: tuple[str, ...]
    ) -> str:
        value: str = self.get(op, path, key, str, allowed[0])
        if value not in allowed:
            raise self.fail((*path, key), f"{key} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def text_field(
        self, op: Mapping[str, Any], path: tuple[str | int, ...], key: str, loop_depth: int
    ) -> list[nodes.Node]:
        """A templated string value, parsed and checked, as Jinja2 nodes."""
        text: str = self.get(op, path, key, str, "")
        control = _CONTROL.search(text)
        if control is not None:
            raise self.fail(
                (*path, key),
                f"{key} contains the control character U+{ord(control.group()):04X}; each operation prints "
                "one line: split it into several operations",
            )
        tree = self.parse((*path, key), lambda: parse_template(_ENV, text, max_loop_depth=2 - loop_depth))
        self.field_paths.append((*path, key))
        tree.set_lineno(len(self.field_paths), override=True)
        return [nodes.Output([nodes.TemplateData(UNIT)]), *tree.body]

    def parse(self, path: tuple[str | int, ...], parse: Any) -> Any:
        try:
            return parse()
        except TemplateError as exc:
            line, column = self.positions.of(path)
            if line is not None and column is not None and exc.column is not None:
                column += exc.column - 1
            raise _relocated(exc, path, line, column) from None

    def operations(self, value: Any, path: tuple[str | int, ...], loop_depth: int) -> list[nodes.Node]:
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of operations")
        body: list[nodes.Node] = []
        for index, op in enumerate(value):
            body.extend(self.operation(op, (*path, index), loop_depth))
        return body

    def operation(self, op: Any, path: tuple[str | int, ...], loop_depth: int) -> list[nodes.Node]:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise self.fail(path, 'each operation is an object with "op": one of ' + ", ".join(_KEYS))
        kind = op["op"]
        if kind not in _KEYS:
            raise self.fail((*path, "op"), f"unknown operation {kind!r}: use one of {', '.join(_KEYS)}")
        unknown = sorted(set(op) - _KEYS[kind])
        if unknown:
            raise self.fail(
                (*path, unknown[0]),
                f"a {kind} operation has no {unknown[0]!r}: use {', '.join(sorted(_KEYS[kind] - {'op'}))}",
            )
        if len(self.ops) >= MAX_OPERATIONS:
            raise self.fail(path, f"a template may have at most {MAX_OPERATIONS} operations: shorten it")
        body = self.each(op, path, loop_depth) if kind == "each" else self.single(kind, op, path, loop_depth)
        if "when" in op:
            test = self.parse(
                (*path, "when"), lambda: parse_expression(_ENV, self.get(op, path, "when", str, ""))
            )
            self.field_paths.append((*path, "when"))
            test.set_lineno(len(self.field_paths), override=True)
            body = [nodes.If(test, body, [], [], lineno=1)]
        return body

    def each(self, op: Mapping[str, Any], path: tuple[str | int, ...], loop_depth: int) -> list[nodes.Node]:
        if loop_depth >= 1:
            raise self.fail(path, "an each operation cannot hold another each: flatten the list")
        name = self.get(op, path, "as", str, "item")
        if not _NAME.match(name):
            raise self.fail((*path, "as"), f"as must be a simple name like line, not {name!r}")
        items = self.parse(
            (*path, "items"), lambda: parse_expression(_ENV, self.get(op, path, "items", str, ""))
        )
        self.field_paths.append((*path, "items"))
        items.set_lineno(len(self.field_paths), override=True)
        first = len(self.ops)
        body = self.operations(op.get("do", []), (*path, "do"), loop_depth + 1)
        target = nodes.Name(name, "store", lineno=1)
        loop = nodes.For(target, items, body, [], None, False, lineno=1)
        # Each turn also pays for printing its operations (a QR code, a picture), before they print.
        add_turn_weight(loop, sum(created.units for created in self.ops[first:]))
        return [loop]

    def single(
        self, kind: str, op: Mapping[str, Any], path: tuple[str | int, ...], loop_depth: int
    ) -> list[nodes.Node]:
        number = len(self.ops)
        values: list[nodes.Node] = []
        align = self.choice(op, path, "align", ("left", "center", "right"))
        created: EscposOp
        if kind == "text":
            width = self.number(op, path, "width", 1, 8, 1)
            created = TextOp(
                _shown(path),
                align=align,
                bold=self.get(op, path, "bold", bool, False),
                underline=self.get(op, path, "underline", bool, False),
                width=width,
                height=self.number(op, path, "height", 1, 8, width),
            )
            values = self.text_field(op, path, "text", loop_depth)
        elif kind == "columns":
            created, values = self.columns(op, path, loop_depth)
        elif kind == "rule":
            char = self.get(op, path, "char", str, "-")
            if len(char) != 1 or _CONTROL.match(char):
                raise self.fail((*path, "char"), "char must be one printable character, e.g. - or =")
            created = RuleOp(_shown(path), char=char, bold=self.get(op, path, "bold", bool, False))
        elif kind == "barcode":
            created = BarcodeOp(
                _shown(path),
                align=align,
                height=self.number(op, path, "height", 1, 255, 80),
                module=self.number(op, path, "module", 2, 6, 2),
                text_position=self.choice(op, path, "text", ("below", "above", "both", "none"))
                .upper()
                .replace("NONE", "OFF"),
            )
            values = self.text_field(op, path, "data", loop_depth)
        elif kind == "qr":
            created = QrOp(
                _shown(path),
                align=align,
                size=self.number(op, path, "size", 1, 16, 6),
                error_correction=self.choice(op, path, "error_correction", ("M", "L", "Q", "H")),
            )
            values = self.text_field(op, path, "data", loop_depth)
        elif kind == "image":
            created = ImageOp(_shown(path), align=align, image=self.image(op, path))
        elif kind == "feed":
            created = FeedOp(_shown(path), lines=self.number(op, path, "lines", 1, 20, 1))
        else:
            created = CutOp(_shown(path), partial=self.get(op, path, "partial", bool, False))
        created.prepare(self.setup)
        self.ops.append(created)
        return [nodes.Output([nodes.TemplateData(f"{RECORD}{number}")]), *values]

    def columns(
        self, op: Mapping[str, Any], path: tuple[str | int, ...], loop_depth: int
    ) -> tuple[EscposOp, list[nodes.Node]]:
        cells = self.get(op, path, "cells", list, [])
        if not cells or len(cells) > 8:
            raise self.fail((*path, "cells"), "cells must list 1 to 8 cells")
        widths, aligns, values = [], [], []
        for index, cell in enumerate(cells):
            cell_path = (*path, "cells", index)
            if not isinstance(cell, dict) or set(cell) - {"text", "width", "align"}:
                raise self.fail(
                    cell_path, 'each cell is an object with "text", "width" and optionally "align"'
                )
            widths.append(self.number(cell, cell_path, "width", 1, 64, 1))
            aligns.append(self.choice(cell, cell_path, "align", ("left", "center", "right")))
            values.extend(self.text_field(cell, cell_path, "text", loop_depth))
        if sum(widths) > self.setup.columns:
            raise self.fail(
                (*path, "cells"),
                f"the cells are {sum(widths)} characters wide but a line holds {self.setup.columns}: "
                "narrow them",
            )
        created = ColumnsOp(
            _shown(path),
            bold=self.get(op, path, "bold", bool, False),
            underline=self.get(op, path, "underline", bool, False),
            widths=tuple(widths),
            aligns=tuple(aligns),
        )
        return created, values

    def image(self, op: Mapping[str, Any], path: tuple[str | int, ...]) -> Image.Image:
        encoded: str = self.get(op, path, "png_base64", str, "")
        if len(encoded) > MAX_IMAGE_BASE64:
            raise self.fail(
                (*path, "png_base64"), f"the image is larger than {MAX_IMAGE_BASE64 // 1024} KB of base64"
            )
        try:
            with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)), formats=["PNG"]) as picture:
                picture.load()
                image = picture.convert("L").point(lambda level: 255 if level >= 128 else 0).convert("1")
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError):
            raise self.fail((*path, "png_base64"), "png_base64 is not a base64-encoded PNG image") from None
        if image.width > self.setup.width_dots or image.height > 1000:
            raise self.fail(
                (*path, "png_base64"),
                f"the image is {image.width}x{image.height} dots; it may be at most "
                f"{self.setup.width_dots} wide and 1000 high: scale it down",
            )
        return image


_KIND_NAMES = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}


class EscposTemplate(CompiledTemplate):
    """A compiled ESC/POS template: operations plus the one Jinja2 program that fills their values."""

    language = LabelLanguage.ESCPOS

    def __init__(
        self,
        setup: PrinterSetup,
        ops: list[EscposOp],
        template: jinja2.Template,
        tree: nodes.Template,
        compiler: _Compiler,
    ) -> None:
        self.setup = setup
        self.ops = ops
        self.tree = tree
        self._template = template
        self._compiler = compiler

    def check_sample_paths(self, sample_data: Mapping[str, Any]) -> None:
        """Refuse values the sample data lacks, naming the operation's line and column."""
        try:
            check_sample_paths(self.tree, self._compiler.source, sample_data)
        except TemplateError as exc:
            paths = self._compiler.field_paths
            path = paths[exc.line - 1] if exc.line and 0 < exc.line <= len(paths) else ("operations",)
            line, column = self._compiler.positions.of(path)
            raise _relocated(exc, path, line, column) from None

    def resolve(
        self, context: Mapping[str, Any], budget: RenderBudget = STATION_BUDGET
    ) -> list[tuple[EscposOp, list[str]]]:
        """The operations to print for this context, each with its rendered values, within `budget`."""
        token = start_render(budget)
        try:
            return self._resolve(context)
        finally:
            stop_render(token)

    def _resolve(self, context: Mapping[str, Any]) -> list[tuple[EscposOp, list[str]]]:
        """`resolve` inside a running meter (each loop turns charge what their operations print)."""
        stream = render_text(self._template, context, document="slip")
        resolved = []
        for record in stream.split(RECORD)[1:]:
            number, *values = record.split(UNIT)
            resolved.append((self.ops[int(number)], values))
        return resolved

    def render(self, context: Mapping[str, Any], budget: RenderBudget = STATION_BUDGET) -> bytes:
        """The slip's ESC/POS bytes for this context, within `budget`."""
        token = start_render(budget)
        try:
            return self._render(context)
        finally:
            stop_render(token)

    def _render(self, context: Mapping[str, Any]) -> bytes:
        setup = self.setup
        parts = [setup.init]
        lines: list[str] = []
        for op, values in self._resolve(context):
            if isinstance(op, TextOp):
                lines.append(op.text(values, setup))
                continue
            if lines:
                parts.append("".join(lines).encode(setup.codec, "replace"))
                lines.clear()
            parts.append(op.emit(values, setup))
        if lines:
            parts.append("".join(lines).encode(setup.codec, "replace"))
        return b"".join(parts)


def compile_escpos(source: str, *, width_dots: int = 576) -> EscposTemplate:
    """Compile an ESC/POS template's JSON source once; errors name line and column."""
    try:
        document = json.loads(source, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"line {exc.lineno}, column {exc.colno}: the template is not valid JSON ({exc.msg}): "
            "fix the syntax",
            code="invalid_escpos",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:
        raise TemplateError(f"{exc}: each key may appear once per object", code="invalid_escpos") from None
    if not isinstance(document, dict) or set(document) - {"codepage", "operations"}:
        raise TemplateError(
            'an ESC/POS template is a JSON object with "operations" (a list) and optionally "codepage"',
            code="invalid_escpos",
            line=1,
            column=1,
        )
    positions = _Positions(source, document)
    try:
        setup = PrinterSetup.build(str(document.get("codepage", "CP437")), width_dots)
    except ValueError as exc:
        line, column = positions.of(("codepage",))
        raise TemplateError(
            f"line {line}, column {column}: {exc}", code="invalid_escpos", line=line, column=column
        ) from None
    compiler = _Compiler(source, positions, setup)
    body = compiler.operations(document.get("operations"), ("operations",), 0)
    if not compiler.ops:
        raise TemplateError(
            "the template has no operations: add at least one", code="invalid_escpos", line=1, column=1
        )
    tree = nodes.Template(_merged(body), lineno=1)
    return EscposTemplate(setup, compiler.ops, compile_metered(_ENV, tree), tree, compiler)


def _merged(body: list[nodes.Node]) -> list[nodes.Node]:
    """`body` with neighbouring outputs joined into one: fewer generator steps per render."""
    merged: list[nodes.Node] = []
    for node in body:
        if isinstance(node, nodes.For | nodes.If):
            node.body = _merged(node.body)
        if isinstance(node, nodes.Output) and merged and isinstance(merged[-1], nodes.Output):
            merged[-1].nodes.extend(node.nodes)
        else:
            merged.append(node)
    return merged


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"the key {key!r} appears twice in one object")
    return dict(pairs)


def validate_escpos(
    source: str, sample_data: Mapping[str, Any], *, width_dots: int, height_dots: int
) -> bytes:
    """Compile, render the sample data within the validation budget and check its length; return the bytes."""
    compiled = compile_escpos(source, width_dots=width_dots)
    compiled.check_sample_paths(sample_data)
    slip = compiled.render(sample_data, VALIDATION_BUDGET)
    if len(slip) > MAX_SLIP_BYTES:
        raise TemplateError(
            f"the sample slip is {len(slip) // 1024} KB; a slip may be at most {MAX_SLIP_BYTES // 1024} KB",
            code="label_too_large",
        )
    length = slip_height(compiled.resolve(sample_data, VALIDATION_BUDGET), compiled.setup)
    if length > height_dots:
        raise TemplateError(
            f"the sample slip is about {length} dots long but the paper allows {height_dots}: "
            "print fewer lines or raise height_dots",
            code="label_too_large",
        )
    return slip
