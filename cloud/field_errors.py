"""Turning pydantic's validation errors into one sentence a person can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["describe_field_errors"]

_SHOWN = 3


def _where(loc: Sequence[Any], whole: str) -> str:
    # A hostile body can put any key in a location: keep each part short.
    parts = [str(part)[:64] for part in loc if part != "body"]
    return ".".join(parts) or whole


def describe_field_errors(
    errors: Sequence[Mapping[str, Any]], *, what: str = "the request", whole: str = "the body"
) -> str:
    """'field.path: problem; other.field: problem (and N more): fix ... and send it again'."""
    shown = []
    for error in errors[:_SHOWN]:
        message = str(error.get("msg", "is invalid"))
        shown.append(f"{_where(error.get('loc', ()), whole)}: {message}")
    more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
    return f"{'; '.join(shown)}{more}: fix {what} and send it again"
