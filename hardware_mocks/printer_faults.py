"""The faults a mock printer can be put in (`POST /fault`, `MockPrinter.set_fault`).

- `none`: prints every job at once.
- `paper_out`, `head_open`, `paused`, `ribbon_out`: keeps receiving into its buffer, prints nothing.
- `offline`: refuses connections.
- `slow`: prints one job per `delay_s`.
- `drop`: cuts the connection in the middle of the next label.
- `buffer_full`: stops reading job bytes.
- `silent`: answers no status query.
- `stall`: stops reading in the middle of the next label, with the connection left open.

How it confirms what it prints (`POST /confirm`, `MockPrinter.set_confirm`), whatever the fault:

- `at_once` (the default): a label prints the moment it is received; a status query right
  after it reports no format waiting.
- `delay`: each label sits in the receive buffer `delay_s` seconds before it prints (first in,
  first out), so status queries meanwhile count it among the formats waiting.
- `fault_after_accept`: the next label is taken into the buffer, then the printer runs out of
  paper before printing it (the fault becomes `paper_out`, with that format waiting; clearing
  the fault prints it); later labels print at once again.
"""

from __future__ import annotations

__all__ = ["CONFIRM_MODES", "FAULTS", "HOLDING_FAULTS"]

FAULTS = (
    "none",
    "paper_out",
    "head_open",
    "paused",
    "offline",
    "slow",
    "drop",
    "ribbon_out",
    "buffer_full",
    "silent",
    "stall",
)
# Faults under which a printer keeps receiving into its buffer but prints nothing.
HOLDING_FAULTS = frozenset({"paper_out", "head_open", "paused", "ribbon_out"})
CONFIRM_MODES = ("at_once", "delay", "fault_after_accept")
