"""The driver for a configured printer: the one place that knows every printer language.

The interface (`printer.py`) knows no driver and every driver imports the interface, so the
choice of a driver lives here, above both, and no import has to hide inside a function.
"""

from __future__ import annotations

from dockside.errors import PrinterUnusable

from .config import PrinterConfig
from .escpos_printer import EscposPrinter
from .printer import Printer
from .zpl import ZplPrinter

__all__ = ["open_printer"]


def open_printer(config: PrinterConfig) -> Printer:
    """The driver for a configured printer, not yet connected (the first send or `open` connects)."""
    if config.language == "zpl":
        return ZplPrinter(config)
    if config.language == "escpos":
        return EscposPrinter(config)
    raise PrinterUnusable(
        f"printer {config.id} speaks {config.language!r}, which Dockside does not drive: "
        "set the printer to ZPL or ESC/POS and update the station",
        code="printer_language_unsupported",
    )
