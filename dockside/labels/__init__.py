"""Label templates: compile once when a version arrives, render fast for every parcel.

`compile_template(language, source)` returns a `CompiledTemplate` whose `render(context)` gives
the bytes for the printer. Order data can never change a label's structure: every value a
template inserts is escaped for the printer language. Every render runs within a `RenderBudget`
(a station's by default, `VALIDATION_BUDGET` for sample renders) and every operation in it is
bounded, so no template can stall the process that renders it. `validate_template` is what the
cloud runs at create and publish; `load_shipped_template` reads a template folder of
`label_templates/`.
"""

from __future__ import annotations

from dockside.labels.compiled import CompiledTemplate, LabelLanguage, compile_template, validate_template
from dockside.labels.context import label_context
from dockside.labels.render_budget import STATION_BUDGET, VALIDATION_BUDGET, RenderBudget
from dockside.labels.shipped import ShippedTemplate, load_shipped_template, shipped_template_names

__all__ = [
    "STATION_BUDGET",
    "VALIDATION_BUDGET",
    "CompiledTemplate",
    "LabelLanguage",
    "RenderBudget",
    "ShippedTemplate",
    "compile_template",
    "label_context",
    "load_shipped_template",
    "shipped_template_names",
    "validate_template",
]
