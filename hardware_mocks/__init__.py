"""Faithful software printers and scales for tests, the demo, benchmarks and 3PL IT dry runs.

They speak the real protocols over real sockets and real serial ports (ptys), with faults you can
inject, and they share no code with the Dockside drivers they exercise.

- `MockPrinter`: a ZPL or ESC/POS network printer on raw TCP, with an HTTP control API.
- `MockScale`: a serial scale on a pty (MT-SICS, Toledo 8217, NCI/SCP-12, CAS continuous), with an
  HTTP control API.
"""

from hardware_mocks.printer import FAULTS, MockPrinter, PrintedLabel
from hardware_mocks.scale import MODES, MockScale
from hardware_mocks.scale_protocols import PROTOCOLS

__all__ = ["FAULTS", "MODES", "PROTOCOLS", "MockPrinter", "MockScale", "PrintedLabel"]
