"""The change log and clock on each backend: strictly increasing revisions, commit order equal to
revision order under concurrent writers, blocks for bulk writes, and the notifier's wake-ups."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import func, select

from cloud.fleet.agents import enroll_agent
from cloud.fleet.warehouses import WarehouseIn, create_enrollment_token, put_warehouse
from cloud.orders.ingest import ingest_orders
from cloud.storage import schema
from cloud.storage.notifier import LocalRevisionNotifier
from cloud.storage.store import ChangeRecord, CloudStore
from dockside.errors import AuthError
from tests.cloud.conftest import order


def _record(store: CloudStore, key: str) -> ChangeRecord:
    return ChangeRecord(store.tenant_id(), None, "warehouse", key, '{"code": "x"}')


def test_a_bulk_write_takes_one_block_of_revisions(store: CloudStore) -> None:
    tenant = store.tenant_id()
    with store.write() as tx:
        assert tx.append_changes([ChangeRecord(tenant, None, "order", f"O{i}", "{}") for i in range(5)]) == [
            1,
            2,
            3,
            4,
            5,
        ]
    with store.write() as tx:
        assert tx.append_changes([ChangeRecord(tenant, None, "order", "O5", "", deleted=True)]) == [6]
        assert tx.append_changes([]) == []
    assert store.clock() == (6, 0)
    assert store.notifier.latest == 6


def test_a_failed_write_takes_no_revision(store: CloudStore) -> None:
    def failing_write() -> None:
        with store.write() as tx:
            tx.append_changes([_record(store, "A")])
            raise RuntimeError("the write fails after taking a revision")

    with pytest.raises(RuntimeError):
        failing_write()
    assert store.current_revision() == 0
    with store.write() as tx:
        assert tx.append_changes([_record(store, "B")]) == [1]


def test_concurrent_writers_commit_in_revision_order(store: CloudStore) -> None:
    """A reader must only ever see a gap-free prefix of the log, or a Watch could skip a row."""
    writers, per_writer = 4, 25
    stop = threading.Event()
    problems: list[str] = []

    def write(worker: int) -> None:
        for i in range(per_writer):
            with store.write() as tx:
                tx.append_changes([_record(store, f"W{worker}-{i}-{n}") for n in range(1 + i % 3)])

    def read() -> None:
        while not stop.is_set():
            with store.read() as conn:
                top, count = conn.execute(
                    select(func.coalesce(func.max(schema.changes.c.revision), 0), func.count())
                ).one()
            if top != count:
                problems.append(f"saw revision {top} with only {count} rows committed")

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    reader.join(timeout=60)
    assert problems == []
    expected = writers * sum(1 + i % 3 for i in range(per_writer))
    with store.read() as conn:
        revisions = [
            r for (r,) in conn.execute(select(schema.changes.c.revision).order_by(schema.changes.c.revision))
        ]
    assert revisions == list(range(1, expected + 1))
    assert store.notifier.latest == expected


def test_the_notifier_wakes_a_waiting_loop_from_another_thread() -> None:
    notifier = LocalRevisionNotifier(revision=3)

    async def scenario() -> tuple[bool, bool, bool, bool]:
        already = await notifier.wait_past(2, 5.0)
        # An hour: the wait can only end with True because of the notify from the other thread.
        waiter = asyncio.create_task(notifier.wait_past(3, 3600.0))
        await asyncio.sleep(0)
        waiting_before_notify = not waiter.done()
        notifying = threading.Thread(target=notifier.advanced, args=(4,))
        notifying.start()
        # A notify that never arrives fails the test here instead of waiting the hour.
        woke = await asyncio.wait_for(waiter, 30)
        notifying.join()
        timed_out = await notifier.wait_past(4, 0.05)
        return already, waiting_before_notify, woke, timed_out

    already, waiting_before_notify, woke, timed_out = asyncio.run(scenario())
    assert already is True
    assert waiting_before_notify is True
    assert woke is True
    assert timed_out is False
    notifier.advanced(2)  # an older revision never moves it back
    assert notifier.latest == 4


def test_closing_the_notifier_releases_every_waiter() -> None:
    notifier = LocalRevisionNotifier()

    async def scenario() -> list[bool]:
        waiters = [asyncio.create_task(notifier.wait_past(0, 30.0)) for _ in range(3)]
        await asyncio.sleep(0)
        threading.Thread(target=notifier.close).start()
        return list(await asyncio.wait_for(asyncio.gather(*waiters), 10))

    assert asyncio.run(scenario()) == [False, False, False]
    assert notifier.closed


def test_create_schema_is_safe_to_run_again(database_url: str) -> None:
    first = CloudStore.open(database_url)
    with first.write() as tx:
        tx.append_changes([_record(first, "A")])
    first.close()
    second = CloudStore.open(database_url)
    try:
        assert second.clock() == (1, 0)
        with second.read() as conn:
            assert conn.execute(select(func.count()).select_from(schema.tenants)).scalar_one() == 1
    finally:
        second.close()


def test_concurrent_ingests_of_the_same_orders_store_each_once(store: CloudStore) -> None:
    tenant = store.tenant_id()
    put_warehouse(store, tenant, WarehouseIn(code="WH1"))
    batch = [order(f"RACE-{i:03d}") for i in range(200)]
    results: list[int] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            results.append(len(ingest_orders(store, tenant, batch).accepted))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ingest) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [200] * 4
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(schema.orders)).scalar_one() == 200
        order_changes = (
            select(func.count()).select_from(schema.changes).where(schema.changes.c.kind == "order")
        )
        assert conn.execute(order_changes).scalar_one() == 200


def test_two_agents_racing_with_one_enrollment_token_end_with_one_winner(store: CloudStore) -> None:
    tenant = store.tenant_id()
    put_warehouse(store, tenant, WarehouseIn(code="WH1"))
    token = create_enrollment_token(store, tenant, "WH1", 600)["token"]
    winners: list[str] = []
    refusals: list[str] = []
    start = threading.Barrier(6)

    def enroll() -> None:
        start.wait(timeout=30)
        try:
            winners.append(enroll_agent(store, token, hostname="pc", agent_version="1").agent_id)
        except AuthError as exc:
            refusals.append(exc.message)

    threads = [threading.Thread(target=enroll) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(winners) == 1
    assert len(refusals) == 5
    assert all("already used" in message for message in refusals)
