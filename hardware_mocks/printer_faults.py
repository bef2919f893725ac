"""The faults a mock printer can be put in (`POST /fault`, `MockPrinter.set_fault`).

- `none`: prints every job at once.
- `paper_out`, `head_open`, `paused`, `ribbon_out`: keeps receiving into its buffer, prints nothing.
- `offline`: refuses connections.
- `slow`: prints one job per `delay_s`.
- `drop`: cuts the connection in the middle of the next label.
- `buffer_full`: stops reading job bytes.
- `silent`: answers no status query.
- `stall`: stops reading in the middle of the next label, with the connection left open.
"""

from __future__ import annotations

__all__ = ["FAULTS", "HOLDING_FAULTS"]

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
