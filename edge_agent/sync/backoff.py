"""Reconnect delays: exponential growth with full jitter, capped, reset after a healthy stream.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads a fleet of agents
that lost the cloud at the same moment, so they do not all come back in the same instant.
This is tenacity's `wait_random_exponential` rule, kept as a small stateful object because the
watch loop and the outbox sender decide themselves when a connection counts as healthy again.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """The next delay to wait before retrying; `reset()` after a success."""

    def __init__(
        self,
        *,
        base_s: float = 0.5,
        cap_s: float = 30.0,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self._draw = draw
        self.failures = 0

    def ceiling(self) -> float:
        """The largest delay the next failure may wait."""
        # The exponent is bounded so a long outage never overflows a float.
        return min(self.cap_s, self.base_s * 2.0 ** min(self.failures, 62))

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        delay = float(self._draw(0.0, self.ceiling()))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
