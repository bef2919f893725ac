"""Printer and scale drivers of the edge agent, one module per printer language and scale protocol.

    config.py          PrinterConfig, ScaleConfig: the station JSON entries, validated
    printer.py         PrinterStatus, the Printer interface
    printer_drivers.py open_printer: the driver for a printer's language; status_once: one status check
    printer_links.py   the kept-open byte pipes under a printer: TCP (TCP_NODELAY), serial, file
    zpl.py             Zebra ZPL over one kept-open TCP connection; ~HS status, SGD identity
    escpos_printer.py  ESC/POS receipt printers through python-escpos; DLE EOT status
    scale.py           WeightReading, the Scale interface, units to grams
    scale_drivers.py   open_scale: the driver for a configured scale protocol
    serial_line.py     a scale's serial port read frame by frame (7-bit masking, resync on noise)
    mt_sics.py         Mettler Toledo MT-SICS
    toledo_8217.py     Toledo 8217 (7E1)
    nci_scp12.py       NCI / Avery Weigh-Tronix SCP-12
    letter_command_scale.py  what Toledo 8217 and NCI share: W/Z/T letters, a weight or status
    cas.py             CAS continuous output
    scale_reader.py    ScaleReader: one background thread per scale
    printer_lane.py    PrinterLane: one kept-open driver and one worker thread per printer
    stations.py        Station, StationFloor: each station's printers and scale, kept open
    discovery.py       zeroconf printers, serial-port scale probing, agent advertising

Every driver raises `dockside.errors.PrinterError` or `ScaleError` with a snake_case code and a
message that tells a packer what to do.
"""

from __future__ import annotations

from .config import PrinterConfig, ScaleConfig
from .printer import PRINTER_FAULTS, Printer, PrinterStatus
from .printer_drivers import open_printer
from .scale import Scale, WeightReading
from .scale_drivers import open_scale
from .scale_reader import ScaleReader

__all__ = [
    "PRINTER_FAULTS",
    "Printer",
    "PrinterConfig",
    "PrinterStatus",
    "Scale",
    "ScaleConfig",
    "ScaleReader",
    "WeightReading",
    "open_printer",
    "open_scale",
]
