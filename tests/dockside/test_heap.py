"""A service's startup heap is kept out of the garbage collector without leaking what dies."""

from __future__ import annotations

import gc
import weakref

from dockside.heap import freeze_startup_heap


class _Node:
    pass


def test_the_startup_heap_is_frozen_and_what_dies_without_a_cycle_is_still_freed() -> None:
    kept = _Node()
    dropped = _Node()
    gone = weakref.ref(dropped)
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert all(obj is not kept for obj in gc.get_objects())  # out of the collector's sight
        del dropped  # no cycle: its reference count frees it, frozen or not
        assert gone() is None
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
