"""The demo's packer hands: after each label, lift the parcel off the mock scale and put the next one on.

A weight serves one parcel (edge_agent.devices.scale_reader), so a real station needs the packer
to change parcels between scans. The demo has no packer standing at its mock scale, so this plays
that part: when the agent reports that a pack used the scale's weight, it empties the scale a
moment later and then puts a parcel of another weight on it, and says so on the console.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

__all__ = ["ParcelFeeder"]

LIFT_AFTER_S = 1.0  # the packer takes the labelled parcel away
PUT_AFTER_S = 0.6  # and puts the next one on
_NEXT_WEIGHTS_G = (2310, 845, 1520, 3780, 610, 1995, 2740, 1130)


class ParcelFeeder:
    """Watches station S1's scale through the agent's status and changes parcels after each pack."""

    def __init__(
        self,
        agent_url: str,
        set_weight: Callable[[int], None],
        say: Callable[[str], None],
        station: str = "S1",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # `headers`: the local token, as every program on the agent's PC sends it.
        self._http = httpx.Client(base_url=agent_url, headers=headers, timeout=2)
        self._set_weight = set_weight
        self._say = say
        self._station = station
        self._seen: dict[str, Any] | None = None
        self._lift_at: float | None = None
        self._put_at: float | None = None
        self._next = 0

    def tick(self) -> None:
        """Do what is due now; call it every half second or so. Never raises for an agent that is down."""
        now = time.monotonic()
        if self._put_at is not None:
            if now >= self._put_at:
                grams = _NEXT_WEIGHTS_G[self._next % len(_NEXT_WEIGHTS_G)]
                self._next += 1
                self._set_weight(grams)
                self._put_at = None
                self._say(f"Demo packer: the next parcel is on the scale ({grams:,} g); scan its order.")
            return
        if self._lift_at is not None:
            if now >= self._lift_at:
                self._set_weight(0)
                self._lift_at = None
                self._put_at = now + PUT_AFTER_S
            return
        used = self._last_used()
        if used is not None and used != self._seen:
            self._seen = used
            self._lift_at = now + LIFT_AFTER_S

    def _last_used(self) -> dict[str, Any] | None:
        try:
            status = self._http.get("/api/v1/status").json()
        except (httpx.HTTPError, ValueError):
            return None
        for station in status.get("stations", []) if isinstance(status, dict) else []:
            if station.get("code") == self._station and isinstance(station.get("scale"), dict):
                used = station["scale"].get("last_used")
                return used if isinstance(used, dict) else None
        return None

    def close(self) -> None:
        self._http.close()
