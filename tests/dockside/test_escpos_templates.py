"""ESC/POS templates: validation names the operation, line and column; rendering is python-escpos bytes."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from dockside.errors import TemplateError
from dockside.labels import compile_template, validate_template
from dockside.labels.escpos_template import EscposTemplate
from tests.dockside.hostile import read_escpos

SAMPLE: dict[str, Any] = {
    "order": {"order_ref": "R-1", "value": None},
    "ship_to": {"name": "Zoë 東京", "company": ""},
    "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
}


def source(*operations: dict[str, Any], **top: Any) -> str:
    return json.dumps({**top, "operations": list(operations)}, indent=2, ensure_ascii=False)


def refuse(text: str, sample: dict[str, Any] | None = None, height: int = 4000) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        validate_template("escpos", text, sample or SAMPLE, width_dots=576, height_dots=height)
    assert caught.value.http_status == 422
    return caught.value


def _png(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("1", (width, height), 0).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_a_slip_renders_to_escpos_commands_and_text() -> None:
    text = source(
        {"op": "text", "text": "Order {{ order.order_ref }}", "align": "center", "bold": True, "width": 2},
        {"op": "each", "items": "lines", "as": "line", "do": [
            {"op": "columns", "cells": [
                {"text": "{{ line.sku }}", "width": 10},
                {"text": "{{ line.qty }}", "width": 4, "align": "right"},
            ]},
        ]},
        {"op": "text", "text": "Company {{ ship_to.company }}", "when": "ship_to.company"},
        {"op": "rule", "char": "="},
        {"op": "barcode", "data": "{{ order.order_ref }}"},
        {"op": "qr", "data": "{{ order.order_ref }}", "size": 4},
        {"op": "image", "png_base64": _png(16, 8)},
        {"op": "feed", "lines": 2},
        {"op": "cut", "partial": True},
        codepage="CP858",
    )  # fmt: skip
    label = validate_template("escpos", text, SAMPLE, width_dots=576, height_dots=4000)
    items = read_escpos(label)

    assert label.startswith(b"\x1b@\x1bt\x13")  # initialise, code page 858
    texts = [params for name, params in items if name == "text"]
    assert texts == [b"Order R-1", b"A-1          2", b"B-2          1", b"=" * 48]
    assert ("GS !", b"\x11") in items  # the title at twice the width and height
    assert ("ESC a", b"\x01") in items
    barcode = next(params for name, params in items if name == "GS k")
    assert barcode == b"I\x05{BR-1"
    assert ("GS v", b"0" + bytes([0, 2, 0, 8, 0]) + b"\xff" * 16) in items
    assert ("ESC d", b"\x02") in items
    assert items[-1] == ("GS V", b"\x01")


def test_text_the_code_page_lacks_prints_as_question_marks() -> None:
    compiled = compile_template("escpos", source({"op": "text", "text": "{{ ship_to.name }}"}))
    assert isinstance(compiled, EscposTemplate)
    assert b"Zo\x89 ??\n" in compiled.render(SAMPLE)  # ë is 0x89 in code page 437


def test_barcode_data_is_printable_ascii_with_braces_doubled() -> None:
    compiled = compile_template("escpos", source({"op": "barcode", "data": "{{ order.order_ref }}"}))
    label = compiled.render({"order": {"order_ref": "a{b\x00é"}})
    barcode = next(params for name, params in read_escpos(label) if name == "GS k")
    assert barcode == b"I\x08{Ba{{b ?"


def test_json_syntax_errors_name_line_and_column() -> None:
    error = refuse('{\n  "operations": [\n    {"op": "text", "text": "x",}\n  ]\n}')
    assert (error.line, error.column) == (3, 32)
    assert "not valid JSON" in error.message


CELLS_TOO_WIDE = [{"text": "a", "width": 40}, {"text": "b", "width": 9}]
NESTED_EACH = [{"op": "each", "items": "lines"}]
BAD_OPERATIONS = [
    ({"op": "banner"}, "unknown operation 'banner': use one of text, columns", "op"),
    ({"op": "text", "colour": "red"}, "a text operation has no 'colour'", "colour"),
    ({"op": "text", "text": 5}, "text must be a string, not 5", "text"),
    ({"op": "text", "bold": "yes"}, "bold must be true or false", "bold"),
    ({"op": "text", "width": 9}, "width must be from 1 to 8, not 9", "width"),
    ({"op": "text", "align": "middle"}, "align must be one of left, center, right", "align"),
    ({"op": "text", "text": "a\nb"}, "control character U+000A", "text"),
    ({"op": "text", "text": "{{ ship_to.nam }}"}, "uses ship_to.nam, which the sample data does not", "text"),
    ({"op": "text", "text": "{{ name }"}, "unexpected '}'", "text"),
    ({"op": "text", "text": "x", "when": "ship_to."}, "syntax error", "when"),
    ({"op": "columns", "cells": CELLS_TOO_WIDE}, "49 characters wide but a line holds 48", "cells"),
    (
        {"op": "columns", "cells": [{"text": "a", "size": 4}]},
        'each cell is an object with "text"',
        "cells[0]",
    ),
    ({"op": "rule", "char": "--"}, "one printable character", "char"),
    ({"op": "barcode", "data": "x", "height": 300}, "height must be from 1 to 255", "height"),
    ({"op": "qr", "data": "x", "error_correction": "Z"}, "must be one of M, L, Q, H", "error_correction"),
    ({"op": "image", "png_base64": "bm90IGEgcG5n"}, "not a base64-encoded PNG", "png_base64"),
    ({"op": "image", "png_base64": _png(600, 10)}, "at most 576 wide", "png_base64"),
    ({"op": "feed", "lines": 0}, "lines must be from 1 to 20", "lines"),
    ({"op": "each", "items": "lines", "as": "line", "do": NESTED_EACH}, "cannot hold another each", "do[0]"),
    ({"op": "each", "items": "lines", "as": "two words"}, "as must be a simple name", "as"),
    ({"op": "text", "text": "{{ ''.__class__ }}"}, "attributes starting with '_'", "text"),
]


@pytest.mark.parametrize(("operation", "fragment", "where"), BAD_OPERATIONS)
def test_bad_operations_are_refused_with_their_place(
    operation: dict[str, Any], fragment: str, where: str
) -> None:
    path = f"operations[1].{where}"
    text = source({"op": "text", "text": "first"}, operation)
    error = refuse(text)
    assert fragment in error.message
    assert f"({path})" in error.message
    assert error.line is not None
    assert error.column is not None
    assert error.message.startswith(f"line {error.line}, column {error.column} ({path})")
    line = text.split("\n")[error.line - 1]
    key = path.rsplit(".", 1)[-1].split("[")[0]
    assert f'"{key}"' in line or key in {"text", "when", "cells", "op"} or path.endswith("]")


def test_template_level_mistakes_are_refused() -> None:
    assert "is a JSON object with" in refuse("[1, 2]").message
    assert "has no operations" in refuse(source()).message
    unknown = refuse(source({"op": "cut"}, codepage="CP9999"))
    assert "unknown code page 'CP9999': use one of" in unknown.message
    assert unknown.line == 2
    assert "appears twice" in refuse('{"operations": [], "operations": []}').message


def test_a_slip_longer_than_the_paper_allows_is_refused() -> None:
    text = source({"op": "feed", "lines": 20}, {"op": "feed", "lines": 20})
    error = refuse(text, height=1000)
    assert error.code == "label_too_large"
    assert "about 1200 dots long but the paper allows 1000" in error.message


def test_more_than_500_operations_are_refused() -> None:
    error = refuse(source(*[{"op": "feed"}] * 501))
    assert "at most 500 operations" in error.message


@pytest.mark.parametrize(
    ("language", "document"),
    [("zpl", "label"), ("escpos", "slip")],
)
def test_render_errors_read_alike_for_labels_and_slips(language: str, document: str) -> None:
    """Both languages turn a failed render into the same codes and words, naming what they print."""

    def compiled(expression: str) -> Any:
        if language == "zpl":
            return compile_template("zpl", f"^XA^FO1,1^FH^FD{{{{ {expression} }}}}^FS^XZ")
        return compile_template("escpos", source({"op": "text", "text": f"{{{{ {expression} }}}}"}))

    def failure(expression: str, context: dict[str, Any]) -> TemplateError:
        with pytest.raises(TemplateError) as caught:
            compiled(expression).render(context)
        assert type(caught.value) is TemplateError
        return caught.value

    missing = failure("order.po_number", {"order": {}})
    assert missing.code == "template_missing_value"
    assert missing.message.startswith(f"the {document} needs a value this order does not have (")
    assert missing.message.endswith("): add it to the order or change the template")
    assert "po_number" in missing.message

    unsafe = failure("(lines | map(attribute='sku')).gi_frame", {"lines": [{"sku": "A-1"}]})
    assert unsafe.code == "template_unsafe"
    assert unsafe.message == (
        f"the template tried something a {document} may not do "
        "(access to attribute 'gi_frame' of 'generator' object is unsafe.): remove it"
    )

    failed = failure("10 // zero", {"zero": 0})
    assert failed.code == "template_render_failed"
    assert failed.message == (
        "the template failed on this order (ZeroDivisionError: integer division or modulo by zero): "
        "fix the expression or guard it with | default(...)"
    )
