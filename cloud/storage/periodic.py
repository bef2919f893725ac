"""Periodic work of a cloud process: a blocking step on the store, run every so often until stop.

The alert scan, the overdue-parcel scan and the carrier-label round each run this way: the step
runs in a worker thread (it is database work), a failure is logged and the loop goes on (a broken
database moment must not end the work for good), and `stop` ends the wait at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cloud.storage.store import CloudStore

__all__ = ["run_every"]

log = logging.getLogger(__name__)


async def run_every(
    step: Callable[[CloudStore], Any], store: CloudStore, stop: asyncio.Event, *, interval_s: float, what: str
) -> None:
    """Run `step(store)` every `interval_s` seconds until `stop` is set; `what` names it in the log."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(step, store)
        except Exception:
            log.exception("%s failed; trying again shortly", what)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            continue
