"""The outbox and its sender in memory: batches, acks, dead letters, retries, no duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest

from dockside.errors import SyncError
from dockside.sync import EventKind
from edge_agent.metrics import AgentMetrics
from edge_agent.printing.jobs import new_job_id
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox, new_event_id
from edge_agent.sync import Backoff, CloudLink, MemoryTransport, OutboxSender
from tests.edge_agent.waiting import until


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def _record(store: Store, outbox: Outbox, count: int, kind: EventKind = EventKind.ORDER_PACKED) -> list[str]:
    with store.atomic():
        ids = [
            outbox.record(
                kind, {"n": n}, order_ref=f"O-{n}", station="S1", occurred_at_ms=1_700_000_000_000 + n
            )
            for n in range(count)
        ]
    outbox.notify()
    return ids


def _sender(store: Store, cloud: MemoryTransport, batch_size: int = 500) -> tuple[Outbox, OutboxSender]:
    outbox = Outbox(store)
    sender = OutboxSender(
        outbox,
        cloud,
        CloudLink(),
        AgentMetrics(),
        batch_size=batch_size,
        backoff=Backoff(base_s=0.001, cap_s=0.01),
    )
    return outbox, sender


@contextlib.asynccontextmanager
async def _running(sender: OutboxSender):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(sender.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_events_go_out_in_batches_and_acked_ones_are_deleted(store: Store) -> None:
    cloud = MemoryTransport()
    outbox, sender = _sender(store, cloud)
    ids = _record(store, outbox, 1200)

    async def scenario() -> None:
        assert await sender.send_batch() == 500
        assert outbox.depth() == 700
        async with _running(sender):
            await until(lambda: outbox.depth() == 0)

    run(scenario)
    assert [len(batch) for batch in cloud.deliveries] == [500, 500, 200]
    assert set(cloud.received) == set(ids)
    sequences = [cloud.received[event_id].sequence for batch in cloud.deliveries for event_id in batch]
    assert sequences == sorted(sequences)
    first = cloud.received[ids[0]]
    assert first.kind == "order_packed"
    assert first.order_ref == "O-0"
    assert first.station == "S1"
    assert first.occurred_at_ms == 1_700_000_000_000
    assert json.loads(first.body) == {"n": 0}


def test_an_idle_sender_wakes_as_soon_as_a_pack_records_events(store: Store) -> None:
    cloud = MemoryTransport()
    outbox, sender = _sender(store, cloud)

    async def scenario() -> None:
        async with _running(sender):
            await until(lambda: cloud.deliveries == [] and sender._wake.is_set() is False)
            ids = _record(store, outbox, 3)
            await until(lambda: set(ids) <= set(cloud.received), timeout=2)

    run(scenario)
    assert outbox.depth() == 0


def test_events_refused_for_good_become_dead_letters(store: Store) -> None:
    cloud = MemoryTransport()
    cloud.refuse = lambda event: ("unknown_order", "no such order") if event.order_ref == "O-1" else None
    outbox, sender = _sender(store, cloud)
    ids = _record(store, outbox, 3)

    async def scenario() -> None:
        async with _running(sender):
            await until(lambda: outbox.depth() == 0)

    run(scenario)
    dead = store.query("SELECT event_id, code, message, order_ref, body FROM dead_letters")
    assert dead == [
        {
            "event_id": ids[1],
            "code": "unknown_order",
            "message": "no such order",
            "order_ref": "O-1",
            "body": '{"n":1}',
        }
    ]
    assert set(cloud.received) == {ids[0], ids[2]}
    assert sum(batch.count(ids[1]) for batch in cloud.deliveries) == 1  # never resent
    assert outbox.dead_letter_count() == 1


def test_a_failed_delivery_is_retried_and_the_cloud_sees_each_event_once(store: Store) -> None:
    cloud = MemoryTransport()
    cloud.push_failures = [SyncError("down", code="cloud_unreachable")] * 2
    cloud.lose_answers = 1  # applied by the cloud, but the agent never hears the ack
    outbox, sender = _sender(store, cloud, batch_size=10)
    ids = _record(store, outbox, 25)

    async def scenario() -> None:
        async with _running(sender):
            await until(lambda: outbox.depth() == 0)

    run(scenario)
    assert set(cloud.received) == set(ids)
    delivered = [event_id for batch in cloud.deliveries for event_id in batch]
    assert len(delivered) == 35  # the batch whose ack was lost went twice ...
    assert len(cloud.received) == 25  # ... and the cloud kept each event once
    assert sender.backoff.failures == 0


def test_a_cloud_that_settles_nothing_is_a_failure_not_a_busy_loop(store: Store) -> None:
    class Silent(MemoryTransport):
        async def push_events(self, events):  # type: ignore[no-untyped-def]
            self.deliveries.append([event.event_id for event in events])
            from dockside.v1 import sync_pb2 as pb

            return pb.PushEventsResponse()

    cloud = Silent()
    outbox, sender = _sender(store, cloud)
    _record(store, outbox, 2)

    async def scenario() -> None:
        with pytest.raises(SyncError, match="settled none"):
            await sender.send_batch()

    run(scenario)
    assert outbox.depth() == 2


def test_an_event_is_recorded_only_with_its_local_effect(store: Store) -> None:
    outbox = Outbox(store)

    def effect_fails() -> None:
        with store.atomic():
            outbox.record(EventKind.LABEL_PRINTED, {"job_id": "j"})
            raise RuntimeError("the local effect failed")

    with pytest.raises(RuntimeError):
        effect_fails()
    assert outbox.depth() == 0


def test_events_of_a_burst_of_packs_travel_in_one_batch(store: Store) -> None:
    cloud = MemoryTransport()
    outbox = Outbox(store)
    sender = OutboxSender(outbox, cloud, CloudLink(), AgentMetrics(), linger_s=0.05)

    async def scenario() -> None:
        async with _running(sender):
            await asyncio.sleep(0)  # the sender is idle, waiting to be woken
            first = _record(store, outbox, 3)
            await asyncio.sleep(0.01)  # it woke and lingers ...
            second = _record(store, outbox, 3)  # ... so these join the same batch
            await until(lambda: outbox.depth() == 0)
            assert cloud.deliveries == [first + second]

    run(scenario)


def test_a_batch_of_large_bodies_is_cut_under_the_cloud_message_limit(store: Store) -> None:
    from edge_agent.sync.outbox_sender import MAX_BATCH_BYTES

    cloud = MemoryTransport()
    outbox, sender = _sender(store, cloud, batch_size=2_000)
    with store.atomic():
        ids = [
            outbox.record(EventKind.STATION_STATUS, {"blob": "é" * 30_000, "n": n}, station="S1")
            for n in range(150)
        ]
    outbox.notify()

    async def scenario() -> None:
        async with _running(sender):
            await until(lambda: outbox.depth() == 0)

    run(scenario)
    assert len(cloud.deliveries) > 1
    for batch in cloud.deliveries:
        assert sum(len(cloud.received[event_id].body) for event_id in batch) <= MAX_BATCH_BYTES
    delivered = [event_id for batch in cloud.deliveries for event_id in batch]
    assert delivered == ids  # every event once, in order


@pytest.mark.parametrize("new_id", [new_event_id, new_job_id])
def test_ids_are_unique_and_time_ordered_so_their_indexes_grow_at_one_end(
    new_id: Callable[[], str],
) -> None:
    ids = [new_id() for _ in range(20_000)]  # a burst far faster than one a millisecond
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert {uuid.UUID(value).version for value in ids[:100]} == {7}


def test_a_drained_outbox_keeps_no_row_and_settles_by_event_id(tmp_path) -> None:
    store = Store.open(tmp_path)
    outbox = Outbox(store)
    with store.atomic():
        recorded = [
            event_id
            for n in range(300)
            for event_id in outbox.record_many(
                (EventKind.WEIGHT_CAPTURED, EventKind.ORDER_PACKED), {"n": n}, order_ref=f"O-{n}"
            )
        ]
    assert [event.event_id for event in outbox.peek(1000)] == recorded  # queue order is id order
    outbox.settle(recorded[:400], [])
    assert [event.event_id for event in outbox.peek(1000)] == recorded[400:]
    outbox.settle(recorded[400:], [])
    assert outbox.peek(1) == []
    assert outbox.depth() == 0
