"""Compiling and rendering label templates (ZPL II through sandboxed Jinja2)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from dockside.errors import TemplateError
from dockside.labels.zpl_escape import zpl_field

__all__ = ["CompiledTemplate", "LabelLanguage", "compile_template", "validate_template"]

MAX_SOURCE_BYTES = 64 * 1024


class LabelLanguage(StrEnum):
    """The printer language a template produces."""

    ZPL = "zpl"
    ESCPOS = "escpos"


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=zpl_field,
        keep_trailing_newline=True,
    )
    return env


_ZPL_ENV = _environment()


class CompiledTemplate:
    """A template version ready to render; build it with `compile_template`."""

    def __init__(self, language: LabelLanguage, template: jinja2.Template) -> None:
        self.language = language
        self._template = template

    def render(self, context: Mapping[str, Any]) -> bytes:
        """The label's bytes for this context; raises TemplateError if a value is missing."""
        try:
            text = self._template.render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"the label needs a value the order does not have ({exc.message}): "
                "add it to the order or change the template",
                code="template_missing_value",
            ) from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(
                f"the template tried something a label may not do ({exc}): remove it",
                code="template_unsafe",
            ) from exc
        return text.encode("utf-8")


def compile_template(language: str, source: str) -> CompiledTemplate:
    """Compile a template's source once; syntax errors name the line."""
    try:
        lang = LabelLanguage(language)
    except ValueError:
        raise TemplateError(
            f"unknown label language {language!r}: use one of {', '.join(v.value for v in LabelLanguage)}",
            code="unknown_language",
        ) from None
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise TemplateError(
            f"the template is larger than {MAX_SOURCE_BYTES // 1024} KB: split it or remove unused parts",
            code="template_too_large",
        )
    if lang is not LabelLanguage.ZPL:
        raise TemplateError(f"{lang.value} templates are not supported yet", code="unsupported_language")
    try:
        template = _ZPL_ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error at line {exc.lineno}: {exc.message}", line=exc.lineno
        ) from exc
    return CompiledTemplate(lang, template)


def validate_template(
    language: str,
    source: str,
    sample_data: Mapping[str, Any],
    *,
    width_dots: int,
    height_dots: int,
) -> bytes:
    """Refuse a template that cannot compile or render its own sample data; return the sample label.

    The cloud calls this when a version is created and again when it is published, so a broken
    template never reaches a station.
    """
    del width_dots, height_dots  # checked by the ZPL structure validation
    compiled = compile_template(language, source)
    return compiled.render(sample_data)
