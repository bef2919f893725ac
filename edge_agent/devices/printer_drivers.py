"""The driver for a configured printer: the one place that knows every printer language.

The interface (`printer.py`) knows no driver and every driver imports the interface, so the
choice of a driver lives here, above both, and no import has to hide inside a function.
"""

from __future__ import annotations

import contextlib

from dockside.errors import PrinterUnusable

from .config import PrinterConfig
from .escpos_printer import EscposPrinter
from .printer import Printer, PrinterStatus
from .zpl import ZplPrinter

__all__ = ["open_printer", "status_once"]


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


def status_once(config: PrinterConfig) -> PrinterStatus:
    """What a printer no lane holds says about itself: connect, ask its status, let it go.

    Raises the driver's PrinterError when it cannot be reached (the type says whether a retry
    may help); a closing that fails is ignored, the answer is already in.
    """
    printer = open_printer(config)
    try:
        printer.open()
        return printer.status()
    finally:
        with contextlib.suppress(Exception):
            printer.close()
