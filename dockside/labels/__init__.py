"""Label templates: compile once when a version arrives, render fast for every parcel.

`compile_template(language, source)` returns a `CompiledTemplate` whose `render(context)` gives
the bytes for the printer. Order data can never change a label's structure: every value a
template inserts is escaped for the printer language.
"""

from __future__ import annotations

from dockside.labels.compiled import CompiledTemplate, LabelLanguage, compile_template, validate_template
from dockside.labels.context import label_context

__all__ = ["CompiledTemplate", "LabelLanguage", "compile_template", "label_context", "validate_template"]
