"""Hostile order data never changes a label's structure and lands, escaped, only in its own field."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pytest

from dockside.labels import CompiledTemplate, compile_template, load_shipped_template
from dockside.labels.escpos_ops import printable_text
from dockside.labels.escpos_template import EscposTemplate
from dockside.labels.zpl_escape import MAX_VALUE_CHARS
from dockside.labels.zpl_fields import ZplLabel, read_labels
from dockside.labels.zpl_syntax import tokenize
from tests.dockside.hostile import HOSTILE, TOKEN, read_escpos, skeleton, string_paths, with_value


def _as_printed(value: str) -> str:
    """What a ZPL field prints for an inserted value: cut, C1 controls and separators as spaces."""
    cut = value[:MAX_VALUE_CHARS]
    return "".join(
        " "
        if 0x80 <= ord(c) <= 0x9F or c in "\u2028\u2029"
        else "\ufffd"
        if 0xD800 <= ord(c) <= 0xDFFF
        else c
        for c in cut
    )


@functools.cache
def _compiled(template: str) -> CompiledTemplate:
    shipped = load_shipped_template(template)
    return compile_template(shipped.language, shipped.source, width_dots=shipped.width_dots)


def _labels(template: str, data: dict[str, Any]) -> tuple[bytes, list[ZplLabel]]:
    shipped = load_shipped_template(template)
    label = _compiled(template).render(data)
    return label, read_labels(label, width_dots=shipped.width_dots, height_dots=shipped.height_dots)


def _commands(label: bytes) -> list[str]:
    """Every command with its parameters, except field data and what a template computes from it.

    A barcode's origin and module width (`^FOx,y^BYw`) are chosen from its value's length so that
    the symbol and its quiet zones fit the label; every other parameter must not move.
    """
    _, commands = tokenize(label.decode("utf-8"))
    sized = {index for index, c in enumerate(commands) if c.name == "BY"}
    sized |= {index - 1 for index in sized if index and commands[index - 1].name == "FO"}
    return [
        f"{c.prefix}{c.name}" + ("" if c.name in ("FD", "PQ") or index in sized else c.params.strip())
        for index, c in enumerate(commands)
    ]


ZPL_CASES = [
    (template, path)
    for template in ("shipping-4x6", "sku-2x1")
    for path in string_paths(load_shipped_template(template).sample_data)
]


@pytest.mark.parametrize(("template", "path"), ZPL_CASES, ids=lambda case: str(case))
def test_hostile_values_stay_in_their_own_zpl_field(template: str, path: tuple[Any, ...]) -> None:
    sample = load_shipped_template(template).sample_data
    clean_bytes, clean = _labels(template, with_value(sample, path, TOKEN))

    for name, value in HOSTILE.items():
        hostile_bytes, hostile = _labels(template, with_value(sample, path, value))

        assert hostile_bytes.count(b"^XA") == hostile_bytes.count(b"^XZ") == len(clean), name
        assert b"~" not in hostile_bytes, name
        assert _commands(hostile_bytes) == _commands(clean_bytes), name
        for clean_label, hostile_label in zip(clean, hostile, strict=True):
            assert len(hostile_label.fields) == len(clean_label.fields), name
            for before, after in zip(clean_label.fields, hostile_label.fields, strict=True):
                # A barcode's x and module width follow its value's length (see _commands).
                assert (after.y, after.font, after.box) == (before.y, before.font, before.box), name
                if before.barcode is None or after.barcode is None:
                    assert (after.x, after.barcode) == (before.x, before.barcode), name
                else:
                    unsized = replace(after.barcode, module_width=0)
                    assert unsized == replace(before.barcode, module_width=0), name
                if TOKEN not in before.text:
                    assert after.text == before.text, f"{name} leaked into another field: {after.text[:80]!r}"
                else:
                    # As inserted, upper-cased (the service) or cut to 32 (the SKU label's description).
                    cut = value[:32] if len(value) > 37 else value
                    printed = {_as_printed(value), _as_printed(value.upper()), _as_printed(cut)}
                    assert after.text in {before.text.replace(TOKEN, p) for p in printed}, name


def test_the_injection_string_prints_as_text_in_the_ship_to_field() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    label, (parsed,) = _labels(
        "shipping-4x6", with_value(sample, ("ship_to", "street"), HOSTILE["zpl_injection"])
    )

    assert label.count(b"^XA") == 1
    assert label.count(b"^XZ") == 1
    assert b"^FH^FD_5EXZ_5EXA_5EFO0,0_5EFDPWNED_5EFS^FS" in label
    streets = [field for field in parsed.fields if "PWNED" in field.text]
    assert [field.text for field in streets] == ["^XZ^XA^FO0,0^FDPWNED^FS"]


ESCPOS_PATHS = list(string_paths(load_shipped_template("packing-slip").sample_data))


def _slip(data: dict[str, Any]) -> tuple[bytes, EscposTemplate]:
    compiled = _compiled("packing-slip")
    assert isinstance(compiled, EscposTemplate)
    return compiled.render(data), compiled


@pytest.mark.parametrize("path", ESCPOS_PATHS, ids=str)
def test_no_control_byte_from_data_reaches_an_escpos_printer(path: tuple[Any, ...]) -> None:
    sample = load_shipped_template("packing-slip").sample_data
    clean_bytes, compiled = _slip(with_value(sample, path, TOKEN))
    clean = read_escpos(clean_bytes)
    clean_text = [params for name, params in clean if name == "text"]

    for name, value in HOSTILE.items():
        hostile_bytes, _ = _slip(with_value(sample, path, value))
        hostile = read_escpos(hostile_bytes)  # raises on any byte that is neither text nor a command

        assert skeleton(hostile) == skeleton(clean), name
        hostile_text = [params for kind, params in hostile if kind == "text"]
        assert len(hostile_text) == len(clean_text), name
        printed = printable_text(value).encode(compiled.setup.codec, "replace")
        for before, after in zip(clean_text, hostile_text, strict=True):
            assert all(byte >= 0x20 and byte != 0x7F for byte in after), name
            if TOKEN.encode() not in before:
                assert after == before, f"{name} leaked into another line: {after[:60]!r}"
            else:
                assert printed[:3] in after, name
