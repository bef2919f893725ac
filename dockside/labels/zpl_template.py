"""ZPL label templates: sandboxed Jinja2 whose every inserted value is escaped as ZPL field data.

Compiling parses the source once, refuses unsafe syntax and forbidden ZPL commands, and generates
the Jinja2 code; rendering is one Jinja2 call whose `finalize` escapes each value with one
`str.translate` (usually just a regex scan that finds nothing to escape).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import nodes

from dockside.errors import TemplateError
from dockside.labels.barcode_fit import check_longest_values
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
    check_sample_paths,
    compile_metered,
    parse_template,
    render_text,
)
from dockside.labels.zpl_check import check_label, check_template_commands
from dockside.labels.zpl_escape import code128_data, zpl_field

__all__ = ["ZplTemplate", "compile_zpl", "validate_zpl"]

MAX_LABEL_BYTES = 256 * 1024

_ENV = LabelEnvironment(finalize=zpl_field, extra_filters={"code128": code128_data})


class ZplTemplate(CompiledTemplate):
    """A compiled ZPL template; `render` is the pack path's hot call."""

    language = LabelLanguage.ZPL

    def __init__(self, template: jinja2.Template, tree: nodes.Template, source: str) -> None:
        self._template = template
        self.tree = tree
        self.source = source

    def render(self, context: Mapping[str, Any], budget: RenderBudget = STATION_BUDGET) -> bytes:
        """The label's ZPL for this context, within `budget`.

        Raises TemplateError if the context lacks a value, TemplateOverrun past the budget.
        """
        token = start_render(budget)
        try:
            text = render_text(self._template, context, document="label")
        finally:
            stop_render(token)
        return text.encode("utf-8")


def compile_zpl(source: str) -> ZplTemplate:
    """Compile a ZPL template's source once; every error names line and column."""
    tree = parse_template(_ENV, source)
    check_template_commands(source)
    return ZplTemplate(compile_metered(_ENV, tree), tree, source)


def validate_zpl(source: str, sample_data: Mapping[str, Any], *, width_dots: int, height_dots: int) -> bytes:
    """Compile, render the sample data within the validation budget and check the label; return its bytes."""
    compiled = compile_zpl(source)
    check_sample_paths(compiled.tree, source, sample_data)
    try:
        label = compiled.render(sample_data, VALIDATION_BUDGET)
    except UnicodeEncodeError:
        raise TemplateError(
            "the template contains characters that are not valid Unicode text: retype or remove them",
            code="invalid_template",
        ) from None
    if len(label) > MAX_LABEL_BYTES:
        raise TemplateError(
            f"the sample label is {len(label) // 1024} KB; a label may be at most "
            f"{MAX_LABEL_BYTES // 1024} KB: remove repeated or unused parts",
            code="label_too_large",
        )
    check_label(label.decode("utf-8"), width_dots=width_dots, height_dots=height_dots)
    # A barcode that fits the sample may not fit the longest value an order may carry.
    check_longest_values(
        lambda data: compiled.render(data, VALIDATION_BUDGET).decode("utf-8"),
        sample_data,
        width_dots=width_dots,
        height_dots=height_dots,
    )
    return label
