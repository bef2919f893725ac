"""The label templates this agent can print with: the active version of each, compiled once.

A template version is compiled the moment it arrives from the cloud (not at the first pack),
so a pack only renders. A version that does not compile here is recorded with its error and is
never used: the pack that needs it gets that error instead of a label from some other version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dockside.errors import SyncError, TemplateError, TemplateOverrun
from dockside.labels import CompiledTemplate, compile_template

__all__ = ["ShelvedTemplate", "TemplateShelf", "compile_version"]


@dataclass(frozen=True, slots=True)
class ShelvedTemplate:
    """One template version as the agent holds it: compiled, or the reason it is not."""

    name: str
    version: int
    compiled: CompiledTemplate | None
    error: str | None = None
    overrun: TemplateOverrun | None = None  # why the version is set aside at this agent

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def compile_version(name: str, version: int, body: Mapping[str, Any]) -> ShelvedTemplate:
    """Compile a synced template version body ({"language", "source", ...})."""
    language, source = body.get("language"), body.get("source")
    if not isinstance(language, str) or not isinstance(source, str):
        return ShelvedTemplate(name, version, None, "the synced version has no language or source")
    width = body.get("width_dots")
    options = {"width_dots": width} if isinstance(width, int) and not isinstance(width, bool) else {}
    try:
        return ShelvedTemplate(name, version, compile_template(language, source, **options))
    except TemplateError as exc:
        return ShelvedTemplate(name, version, None, exc.message)
    except Exception as exc:  # a template engine bug must not stop the sync
        return ShelvedTemplate(name, version, None, f"compiling failed: {exc!r}")


class TemplateShelf:
    """The active version of each template name, ready to render."""

    def __init__(self) -> None:
        self._active: dict[str, ShelvedTemplate] = {}

    def get(self, name: str) -> ShelvedTemplate:
        """The usable active version of `name`; raises an error a packer can act on."""
        shelved = self._active.get(name)
        if shelved is None:
            raise SyncError(
                f"label template {name!r} has not reached this agent: publish it in the cloud console, "
                "or wait for the agent to sync and scan again",
                code="template_not_synced",
            )
        if shelved.overrun is not None:
            raise TemplateOverrun(shelved.overrun.message, code=shelved.overrun.code)
        if shelved.compiled is None:
            raise TemplateError(
                f"label template {shelved.label} cannot be used at this agent ({shelved.error}): "
                "publish a fixed version in the cloud console",
                code="template_unusable",
            )
        return shelved

    def put(self, shelved: ShelvedTemplate) -> None:
        self._active[shelved.name] = shelved

    def set_aside(self, name: str, version: int, overrun: TemplateOverrun) -> bool:
        """Stop using version `version` of `name` (if it is still the active one) because of `overrun`.

        True if it was set aside now, False if it already was or is no longer active.
        """
        current = self._active.get(name)
        if current is None or current.version != version or current.overrun is not None:
            return False
        self._active[name] = replace(current, overrun=overrun)
        return True

    def remove(self, name: str, version: int | None = None) -> None:
        """Forget `name` (only if its active version is `version`, when given)."""
        current = self._active.get(name)
        if current is not None and (version is None or current.version == version):
            del self._active[name]

    def replace_all(self, shelved: Iterable[ShelvedTemplate]) -> None:
        self._active = {entry.name: entry for entry in shelved}

    def names(self) -> list[str]:
        return sorted(self._active)

    def load(self, rows: Iterable[tuple[str, int, str, str | None]]) -> None:
        """Compile the active versions stored in the cache (name, version, body, compile_error)."""
        entries = []
        for name, version, body, error in rows:
            if error is not None:
                entries.append(ShelvedTemplate(name, version, None, error))
            else:
                entries.append(compile_version(name, version, json.loads(body)))
        self.replace_all(entries)
