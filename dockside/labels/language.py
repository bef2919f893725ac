"""What every compiled label template is: its printer language and a fast `render(context) -> bytes`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["CompiledTemplate", "LabelLanguage"]


class LabelLanguage(StrEnum):
    """The printer language a template produces."""

    ZPL = "zpl"
    ESCPOS = "escpos"


class CompiledTemplate(ABC):
    """A template version ready to render; build it with `compile_template`.

    Compiling is the slow part (parsing, safety checks, code generation) and happens once, when a
    version arrives; `render` is the hot path of every pack.
    """

    language: LabelLanguage

    @abstractmethod
    def render(self, context: Mapping[str, Any]) -> bytes:
        """The label's bytes for this context; raises TemplateError if the context lacks a value."""
