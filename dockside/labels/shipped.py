"""Reading the templates Dockside ships (`label_templates/<name>/`) into the body of a template version.

A shipped template folder holds `template.zpl` or `template.json` (the source), `meta.json`
(`language`, `width_dots`, `height_dots`, `dpi`, `description`) and `sample.json` (the sample data,
in the variables of `label_context`). The demo and the tests load them through the admin API with
`ShippedTemplate.version_body()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockside.errors import TemplateError
from dockside.labels.language import LabelLanguage

__all__ = ["SHIPPED_TEMPLATES", "ShippedTemplate", "load_shipped_template", "shipped_template_names"]

# Where the repository keeps them; an installed agent or cloud passes its own folder.
SHIPPED_TEMPLATES = Path(__file__).resolve().parents[2] / "label_templates"
_SOURCE_FILES = {LabelLanguage.ZPL: "template.zpl", LabelLanguage.ESCPOS: "template.json"}


@dataclass(frozen=True, slots=True)
class ShippedTemplate:
    """One shipped template: its name, source, sample data and the label it is for."""

    name: str
    language: LabelLanguage
    source: str
    sample_data: dict[str, Any]
    width_dots: int
    height_dots: int
    dpi: int
    description: str

    def version_body(self) -> dict[str, Any]:
        """The JSON body of `POST /api/v1/templates/{name}/versions` for this template."""
        return {
            "language": self.language.value,
            "source": self.source,
            "sample_data": self.sample_data,
            "width_dots": self.width_dots,
            "height_dots": self.height_dots,
            "dpi": self.dpi,
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError(
            f"{path} is missing: a shipped template needs it", code="shipped_template_broken"
        ) from None
    except json.JSONDecodeError as exc:
        raise TemplateError(
            f"{path} line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})",
            code="shipped_template_broken",
        ) from None
    if not isinstance(document, dict):
        raise TemplateError(f"{path} must hold a JSON object", code="shipped_template_broken")
    return document


def load_shipped_template(folder: str | Path) -> ShippedTemplate:
    """Read one template folder; a bare name is looked up in `SHIPPED_TEMPLATES`."""
    path = Path(folder)
    if not path.is_dir() and not path.is_absolute() and len(path.parts) == 1:
        path = SHIPPED_TEMPLATES / path
    meta = _read_json(path / "meta.json")
    try:
        language = LabelLanguage(meta["language"])
        width, height, dpi = int(meta["width_dots"]), int(meta["height_dots"]), int(meta.get("dpi", 203))
    except (KeyError, ValueError, TypeError) as exc:
        raise TemplateError(
            f"{path / 'meta.json'} needs language (zpl or escpos), width_dots, height_dots and dpi: {exc}",
            code="shipped_template_broken",
        ) from None
    source_path = path / _SOURCE_FILES[language]
    try:
        source = source_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{source_path} is missing", code="shipped_template_broken") from None
    return ShippedTemplate(
        name=path.name,
        language=language,
        source=source,
        sample_data=_read_json(path / "sample.json"),
        width_dots=width,
        height_dots=height,
        dpi=dpi,
        description=str(meta.get("description", "")),
    )


def shipped_template_names(root: str | Path = SHIPPED_TEMPLATES) -> list[str]:
    """The names of the template folders under `root`, sorted."""
    return sorted(entry.name for entry in Path(root).iterdir() if (entry / "meta.json").is_file())
