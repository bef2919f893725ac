"""Who packs at each station: a packer signs in with a badge or a PIN, and every job carries them.

    signed = await sign_ins.sign_in("S1", badge="B-0001")   # or pin="4821"
    sign_ins.current("S1")        # the packer's id, for the jobs and events made at S1
    sign_ins.sign_out("S1")

The packers are the warehouse's, as the cloud synced them (the cache's `packers`: id, name,
badge, argon2 `pin_hash`). A badge names its packer; a PIN alone is checked against every packer's
hash (the cloud keeps PINs unique in a warehouse), off the event loop: argon2 is slow on purpose.
Failed attempts are counted per station: after `MAX_FAILURES` in `FAILURE_WINDOW_S` the station
refuses every attempt until the oldest leaves the window, so a PIN cannot be guessed by trying.

Who is signed in where is kept in the agent's store (`station_packers`): it survives a reload of
the page and a restart of the agent (an update or a crash mid-shift does not sign anyone out, and
their work stays theirs), until the packer signs out, signs in at another station, or the cloud
disables them (the packer leaves the cache, and with it every station).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockside.errors import DocksideError
from dockside.typed_secrets import matches
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms

__all__ = [
    "FAILURE_WINDOW_S",
    "MAX_FAILURES",
    "PackerNotRecognised",
    "SignInThrottled",
    "SignedIn",
    "StationSignIns",
]

MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0


class PackerNotRecognised(DocksideError):
    """No packer of this warehouse has that badge or PIN (401)."""

    code = "packer_not_recognised"
    http_status = 401


class SignInThrottled(DocksideError):
    """Too many failed sign-ins at this station in the last minute (429): wait, then try again."""

    code = "too_many_attempts"
    http_status = 429


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The packer signed in at a station, and since when."""

    station: str
    packer: int
    name: str
    signed_in_at_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "packer": {"id": self.packer, "name": self.name},
            "signed_in_at_ms": self.signed_in_at_ms,
        }


class StationSignIns:
    """The packer signed in at each station of one agent, kept in its store."""

    def __init__(self, store: Store, cache: Cache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cache = cache
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._at: dict[str, tuple[int, int]] = {
            str(station): (int(packer), int(at))
            for station, packer, at in store.conn.execute(
                "SELECT station, packer, signed_in_at_ms FROM station_packers"
            )
        }

    def current(self, station: str) -> int | None:
        """The id of the packer signed in at `station` who is still a packer of the warehouse, or None."""
        found = self._at.get(station)
        if found is None or str(found[0]) not in self._cache.packers:
            return None
        return found[0]

    def who(self, station: str) -> SignedIn | None:
        """The packer signed in at `station`, with their name, or None."""
        packer = self.current(station)
        if packer is None:
            return None
        return SignedIn(station, packer, str(self._cache.packers[str(packer)]["name"]), self._at[station][1])

    async def sign_in(self, station: str, *, badge: str | None = None, pin: str | None = None) -> SignedIn:
        """Sign the packer with this badge or PIN in at `station` (and out of any other station).

        PackerNotRecognised when no packer has it; SignInThrottled after too many failures here.
        """
        self._check_throttle(station)
        packer: dict[str, Any] | None = None
        if badge is not None:
            packer = next((p for p in self._cache.packers.values() if p.get("badge") == badge), None)
        elif pin is not None:
            hashes = [(p, p["pin_hash"]) for p in self._cache.packers.values() if p.get("pin_hash")]
            packer = await asyncio.to_thread(_with_pin, hashes, pin)
        if packer is None:
            self._failures.setdefault(station, deque()).append(self._clock())
            what = "badge" if badge is not None else "PIN"
            raise PackerNotRecognised(
                f"no packer of this warehouse has this {what}: try again, or ask your supervisor to "
                "set you up in the cloud console",
                params={"what": "badge" if badge is not None else "pin"},
            )
        self._failures.pop(station, None)
        signed = SignedIn(station, int(packer["id"]), str(packer["name"]), now_ms())
        with self._store.atomic():
            self._store.conn.execute(
                "DELETE FROM station_packers WHERE packer = ? AND station <> ?", (signed.packer, station)
            )
            self._store.conn.execute(
                "INSERT INTO station_packers (station, packer, signed_in_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (station) DO UPDATE SET packer = excluded.packer, "
                "signed_in_at_ms = excluded.signed_in_at_ms",
                (station, signed.packer, signed.signed_in_at_ms),
            )
        self._at = {code: at for code, at in self._at.items() if at[0] != signed.packer}
        self._at[station] = (signed.packer, signed.signed_in_at_ms)
        return signed

    def sign_out(self, station: str) -> SignedIn | None:
        """Sign out whoever is signed in at `station`; who that was, or None."""
        was = self.who(station)
        with self._store.atomic():
            self._store.conn.execute("DELETE FROM station_packers WHERE station = ?", (station,))
        self._at.pop(station, None)
        return was

    def _check_throttle(self, station: str) -> None:
        failures = self._failures.get(station)
        if not failures:
            return
        now = self._clock()
        while failures and now - failures[0] >= FAILURE_WINDOW_S:
            failures.popleft()
        if len(failures) >= MAX_FAILURES:
            wait = int(FAILURE_WINDOW_S - (now - failures[0])) + 1
            raise SignInThrottled(
                f"{MAX_FAILURES} wrong badges or PINs at station {station} in the last minute: "
                f"wait {wait} s, then try again (or ask your supervisor)",
                params={"failures": MAX_FAILURES, "station": station, "wait_s": wait},
            )


def _with_pin(hashes: list[tuple[dict[str, Any], str]], pin: str) -> dict[str, Any] | None:
    """The packer whose PIN hash `pin` matches, or None (runs in a worker thread: argon2 is slow)."""
    return next((packer for packer, pin_hash in hashes if matches(pin_hash, pin)), None)
