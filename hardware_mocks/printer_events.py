"""What a printer's input parser hands to the printer: the same small vocabulary for ZPL and ESC/POS.

A parser turns the raw byte stream of one connection into these events, in stream order. The printer
decides what each one does (print, answer, hold), so the parsers stay pure and are tested without
sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Blocked", "JobComplete", "JobStarted", "PrinterCommand", "PrinterEvent", "PrinterQuery"]


@dataclass(frozen=True, slots=True)
class JobStarted:
    """The first bytes of a label (ZPL `^XA`) or receipt (first printable ESC/POS byte) arrived."""


@dataclass(frozen=True, slots=True)
class JobComplete:
    """A whole label or receipt arrived (ZPL `^XA`..`^XZ`, ESC/POS up to and including a cut)."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class PrinterQuery:
    """A host query that a real printer answers at once (`~HS`, `~HI`, SGD getvar, DLE EOT n)."""

    kind: str
    argument: str = ""


@dataclass(frozen=True, slots=True)
class PrinterCommand:
    """An immediate command with an effect but no answer (`~JA`, `~PS`, `~PP`, `~JR`, SGD setvar)."""

    kind: str
    argument: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class Blocked:
    """The parser stopped before a new job because the printer refuses job bytes for now."""


PrinterEvent = JobStarted | JobComplete | PrinterQuery | PrinterCommand | Blocked
