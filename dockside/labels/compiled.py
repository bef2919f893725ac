"""Compiling and validating label templates in any printer language: what the agent and the cloud call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dockside.errors import TemplateError
from dockside.labels.escpos_template import compile_escpos, validate_escpos
from dockside.labels.language import CompiledTemplate, LabelLanguage
from dockside.labels.zpl_template import compile_zpl, validate_zpl

__all__ = [
    "MAX_SAMPLE_BYTES",
    "MAX_SOURCE_BYTES",
    "CompiledTemplate",
    "LabelLanguage",
    "compile_template",
    "validate_template",
]

MAX_SOURCE_BYTES = 64 * 1024
MAX_SAMPLE_BYTES = 64 * 1024
# Sane bounds for a label: up to 8 inches wide and 40 inches long at 600 dpi would be absurd; this
# keeps a preview's bitmap and a validation's work small.
MAX_WIDTH_DOTS = 4_000
MAX_HEIGHT_DOTS = 16_000


def _language(language: str) -> LabelLanguage:
    try:
        return LabelLanguage(language)
    except ValueError:
        raise TemplateError(
            f"unknown label language {str(language)[:20]!r}: "
            f"use one of {', '.join(v.value for v in LabelLanguage)}",
            code="unknown_language",
        ) from None


def _check_source_size(source: str) -> None:
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise TemplateError(
            f"the template is larger than {MAX_SOURCE_BYTES // 1024} KB: split it or remove unused parts",
            code="template_too_large",
        )


def compile_template(language: str, source: str, *, width_dots: int = 576) -> CompiledTemplate:
    """Compile a template's source once; syntax errors name line and column.

    `width_dots` matters only for ESC/POS (the paper width that column layouts must fit).
    """
    lang = _language(language)
    _check_source_size(source)
    if lang is LabelLanguage.ZPL:
        return compile_zpl(source)
    return compile_escpos(source, width_dots=width_dots)


def validate_template(
    language: str,
    source: str,
    sample_data: Mapping[str, Any],
    *,
    width_dots: int,
    height_dots: int,
    dpi: int = 203,
) -> bytes:
    """Refuse a template that is unsafe, malformed, oversized or fails its sample; return the sample label.

    The cloud calls this when a version is created and again when it is published, so a broken
    template never reaches a station. Every refusal is a TemplateError (HTTP 422) whose message
    says what to fix and, where it can, names line and column.
    """
    del dpi  # a label's geometry is in dots; the dpi only scales the preview
    lang = _language(language)
    _check_source_size(source)
    if not 1 <= width_dots <= MAX_WIDTH_DOTS or not 1 <= height_dots <= MAX_HEIGHT_DOTS:
        raise TemplateError(
            f"a label of {width_dots}x{height_dots} dots is out of range: "
            f"use a width from 1 to {MAX_WIDTH_DOTS} and a height from 1 to {MAX_HEIGHT_DOTS} dots",
            code="invalid_label_size",
        )
    try:
        sample_size = len(
            json.dumps(sample_data, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        )
    except (TypeError, ValueError):
        raise TemplateError("the sample data must be a JSON object", code="invalid_sample_data") from None
    if sample_size > MAX_SAMPLE_BYTES:
        raise TemplateError(
            f"the sample data is larger than {MAX_SAMPLE_BYTES // 1024} KB: keep one realistic order",
            code="sample_data_too_large",
        )
    if lang is LabelLanguage.ZPL:
        return validate_zpl(source, sample_data, width_dots=width_dots, height_dots=height_dots)
    return validate_escpos(source, sample_data, width_dots=width_dots, height_dots=height_dots)
