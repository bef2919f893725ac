"""Bulk work pauses the garbage collector, which collects again after the batch."""

from __future__ import annotations

import gc
import weakref

from cloud.storage.gc_pause import paused_gc


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


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
