"""The cloud keeps the garbage collector out of its way without leaking what it frees."""

from __future__ import annotations

import gc
import weakref

from cloud.gc_pause import paused_gc
from dockside.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


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


def test_a_paused_collector_collects_again_after_the_batch() -> None:
    assert gc.isenabled()
    with paused_gc(), paused_gc():  # nested batches
        assert not gc.isenabled()
        first, second = _Node(), _Node()
        first.peer, second.peer = second, first
        cycle = weakref.ref(first)
        del first, second
    assert gc.isenabled()
    gc.collect()
    assert cycle() is None
