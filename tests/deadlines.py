"""Deadlines that only catch a hang, longer when the suite runs under coverage.py.

`make coverage` traces every line of the test processes and of every process they start
(coverage.py sets COVERAGE_RUN=true in them), which makes Python code several times slower; a
deadline meant to catch a hang must not fail a test for that. What a test asserts never changes,
only how long it waits for it. `make coverage` gives pytest-timeout the same factor.
"""

from __future__ import annotations

import os

__all__ = ["UNDER_COVERAGE", "hang_deadline"]

UNDER_COVERAGE = os.environ.get("COVERAGE_RUN") == "true"
_FACTOR = 3.0 if UNDER_COVERAGE else 1.0


def hang_deadline(seconds: float) -> float:
    """`seconds`, or three times that under coverage."""
    return seconds * _FACTOR
