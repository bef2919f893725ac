"""What every printer driver offers the pack path, whatever language the printer speaks.

A driver is opened once per printer and kept: `send` hands label bytes to an already open
connection (no connect, no status round trip), `status` asks the printer what it is doing, and
`identify` returns the hardware id (serial number or MAC) that survives a change of address.
The drivers live in their own modules and import this one; `printer_drivers.open_printer`
picks one for a configured printer.
Every failure is a `dockside.errors.PrinterError` whose message tells the packer what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from .config import PrinterConfig

__all__ = [
    "PRINTER_FAULTS",
    "InlineSender",
    "Printer",
    "PrinterState",
    "PrinterStatus",
    "describe_faults",
    "status_of",
]

# A printer as a station shows it: it prints, it cannot be reached, or it answers but cannot print.
PrinterState = Literal["ready", "offline", "fault"]

# Each fault with what a packer should do about it, in the order a person should fix them:
# a printer that is offline or silent hides everything else.
PRINTER_FAULTS: dict[str, str] = {
    "offline": "is offline: check that it is switched on and its cable is plugged in",
    "no_answer": "does not answer: check that it is switched on and shows no error light",
    "head_open": "has its print head open: close the lid until it clicks",
    "paper_out": "is out of labels: load labels, the waiting label prints by itself",
    "ribbon_out": "is out of ribbon: load a new ribbon",
    "paused": "is paused: press PAUSE on the printer to resume",
    "buffer_full": "has a full buffer: wait for the queued labels to print, then try again",
}


@dataclass(frozen=True)
class PrinterStatus:
    """What a printer said about itself; `ready` is True only when nothing stops a label."""

    ready: bool
    faults: frozenset[str]
    message: str
    # Labels received but not yet printed; None when the printer does not say.
    formats_in_buffer: int | None = field(default=None, compare=False)

    @property
    def state(self) -> PrinterState:
        """Ready, offline (it cannot be reached, which hides any other fault) or fault."""
        if self.ready:
            return "ready"
        return "offline" if "offline" in self.faults else "fault"


def describe_faults(
    printer_name: str, faults: Iterable[str], *, detail: str = "", advice: Mapping[str, str] | None = None
) -> str:
    """One sentence per fault, most urgent first, naming the printer; or that it is ready.

    `advice` replaces the wording of some faults (a receipt printer is out of paper, not labels).
    """
    found = set(faults)
    wording = {**PRINTER_FAULTS, **(advice or {})}
    parts = [f"printer {printer_name} {wording[code]}" for code in PRINTER_FAULTS if code in found]
    parts += [f"printer {printer_name} reports {code}" for code in sorted(found - PRINTER_FAULTS.keys())]
    if not parts:
        parts = [f"printer {printer_name} is ready"]
    text = "; ".join(parts)
    return f"{text} ({detail})" if detail else text


def status_of(
    printer_name: str,
    faults: Iterable[str],
    *,
    detail: str = "",
    formats: int | None = None,
    advice: Mapping[str, str] | None = None,
) -> PrinterStatus:
    """A PrinterStatus whose message is built from its faults."""
    found = frozenset(faults)
    return PrinterStatus(
        ready=not found,
        faults=found,
        message=describe_faults(printer_name, found, detail=detail, advice=advice),
        formats_in_buffer=formats,
    )


@runtime_checkable
class Printer(Protocol):
    """A label or receipt printer the agent keeps open."""

    config: PrinterConfig

    def open(self) -> None:
        """Connect now instead of at the first label; raises PrinterError if it cannot."""

    def send(self, data: bytes) -> None:
        """Hand label bytes to the printer; fast, raises PrinterError if they cannot be written."""

    def status(self) -> PrinterStatus:
        """Ask the printer what it is doing; a silent or unreachable printer is a status, not an error."""
        ...

    def identify(self) -> str:
        """The printer's stable hardware id (serial number or MAC)."""
        ...

    def close(self) -> None:
        """Drop the connection; the next call opens it again."""


@runtime_checkable
class InlineSender(Protocol):
    """A printer that can take a label from the event loop without waiting (ZPL over TCP).

    `send_nowait` never connects and never waits: it answers None when the label would have to
    wait (no open connection, a full buffer, another write under way), and the caller sends it
    through the printer's lane thread instead. After a partial start, `finish_send` (which may
    wait, so only in the lane thread) writes the rest before anything else.
    """

    def send_nowait(self, data: bytes) -> int | None: ...

    def finish_send(self) -> None: ...
