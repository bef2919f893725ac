"""Waiting on a condition with a deadline, never a blind sleep (sync and async flavours)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `predicate` from a plain thread until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.002)


async def until(predicate: Callable[[], T], *, timeout: float = 5.0, what: str = "condition") -> T:
    """Poll `predicate` on the event loop (letting other tasks run) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.002)
