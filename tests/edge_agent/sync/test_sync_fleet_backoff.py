"""A fleet coming back after a cloud restart: all within 30 s, spread out (no stampede).

Simulated with the agents' own Backoff (full jitter) and a seeded random source: each of 1,000
agents retries from the moment the cloud died; the cloud answers again after the outage.
"""

from __future__ import annotations

import collections
import random

import pytest

from edge_agent.agent import AgentSettings
from edge_agent.sync import Backoff

FLEET = 1_000


def _return_times(outage_s: float, seed: int) -> list[float]:
    settings = AgentSettings()
    rng = random.Random(seed)
    back = []
    for _ in range(FLEET):
        backoff = Backoff(base_s=settings.reconnect_base_s, cap_s=settings.reconnect_cap_s, draw=rng.uniform)
        at = 0.0
        while at < outage_s:
            at += backoff.next_delay()
        back.append(at - outage_s)
    return back


@pytest.mark.parametrize("outage_s", [30.0, 120.0, 900.0])
def test_a_thousand_agents_are_back_within_30_s_without_a_stampede(outage_s: float) -> None:
    for seed in range(3):
        back = _return_times(outage_s, seed)
        assert max(back) <= 30.0
        per_second = collections.Counter(int(delay) for delay in back)
        # Spread over the window: no second takes more than a tenth of the fleet.
        assert max(per_second.values()) <= FLEET // 10
