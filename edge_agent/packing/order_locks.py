"""The order locks of one agent: what one order's scans, closes, voids and releases do runs one at a time.

One `OrderLocks` is shared by everything of the agent that changes an order's parcels (the pack,
the parcel actions, the release of labels awaiting a number), so none of them interleaves with
another on the same order. A lock lives only while something of its order runs or waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

__all__ = ["OrderLocks"]


@dataclasses.dataclass
class _OrderLock:
    """Serialises the scans of one order; dropped when no scan of it is running or waiting."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class OrderLocks:
    """One lock per order being worked on now, shared by the pack, parcel actions and releases."""

    def __init__(self) -> None:
        self._locks: dict[str, _OrderLock] = {}  # orders being packed now

    @contextlib.asynccontextmanager
    async def hold(self, order_ref: str) -> AsyncIterator[None]:
        """Hold the order's lock: what one order's scans, closes and voids do runs one at a time.

        The lock is dropped when nothing of the order is running or waiting.
        """
        lock = self._locks.get(order_ref)
        if lock is None:
            lock = self._locks[order_ref] = _OrderLock()
        lock.users += 1
        try:
            async with lock.lock:
                yield
        finally:
            lock.users -= 1
            if not lock.users:
                del self._locks[order_ref]
