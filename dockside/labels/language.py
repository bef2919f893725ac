"""What every compiled label template is: its printer language and a fast `render(context) -> bytes`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from dockside.labels.render_budget import STATION_BUDGET, RenderBudget

__all__ = ["CompiledTemplate", "LabelLanguage"]


class LabelLanguage(StrEnum):
    """The printer language a template produces."""

    ZPL = "zpl"
    ESCPOS = "escpos"


class CompiledTemplate(ABC):
    """A template version ready to render; build it with `compile_template`.

    Compiling is the slow part (parsing, safety checks, code generation) and happens once, when a
    version arrives; `render` is the hot path of every pack, and every render is metered.
    """

    language: LabelLanguage

    @abstractmethod
    def render(self, context: Mapping[str, Any], budget: RenderBudget = STATION_BUDGET) -> bytes:
        """The label's bytes for this context, within `budget` (a station's unless told).

        Raises TemplateError if the context lacks a value, and TemplateOverrun if the template
        tries more work than the sandbox allows or runs past the budget.
        """
