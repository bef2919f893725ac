"""The watch loop in memory: resume, apply+revision atomically, snapshot swap, backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import AuthError, Conflict, SyncError
from dockside.sync import SyncChange
from edge_agent.metrics import AgentMetrics
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.sync import Backoff, CloudLink, MemoryTransport, Watcher
from tests.edge_agent.waiting import until

ZPL = "^XA^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }}^FS^XZ"


def _order(ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_ref": ref,
        "warehouse": "WH1",
        "ship_to": {"name": "Ada", "street": "1 Main St", "city": "Austin", "country": "US"},
        "lines": [{"sku": "MUG", "qty": 1}],
        **extra,
    }


class Rig:
    """A watcher over a store and an in-memory cloud, with everything a test looks at."""

    def __init__(self, store: Store, cloud: MemoryTransport) -> None:
        self.store = store
        self.cloud = cloud
        self.cache = Cache(store)
        self.cache.load()
        self.link = CloudLink()
        self.metrics = AgentMetrics()
        self.watcher = Watcher(
            store, self.cache, cloud, self.link, self.metrics, backoff=Backoff(base_s=0.001, cap_s=0.01)
        )

    def orders(self) -> list[str]:
        return [row["order_ref"] for row in self.store.query("SELECT order_ref FROM orders ORDER BY 1")]

    def count(self, metric: Any) -> float:
        return float(metric._value.get())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[asyncio.Task[None]]:
        task = asyncio.create_task(self.watcher.run())
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


@pytest.fixture
def cloud() -> MemoryTransport:
    return MemoryTransport()


def test_changes_are_applied_with_their_revision(store: Store, cloud: MemoryTransport) -> None:
    cloud.publish("order", "A-1", _order("A-1"))
    cloud.publish("order", "A-2", _order("A-2", state="released"))
    rig = Rig(store, cloud)

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == 2, what="both changes")
            assert rig.link.online
            head = cloud.publish("order", "A-1", None)  # a live delete
            await until(lambda: store.revision() == head, what="the live delete")

    run(scenario)
    assert rig.orders() == ["A-2"]
    assert rig.cache.order("A-2") is not None
    assert rig.cache.order("A-2").state == "released"  # type: ignore[union-attr]
    assert rig.count(rig.metrics.changes_applied) == 3
    assert rig.count(rig.metrics.snapshots) == 0


def test_a_restart_resumes_after_the_stored_revision(data_dir: Path, cloud: MemoryTransport) -> None:
    for n in range(3):
        cloud.publish("order", f"A-{n}", _order(f"A-{n}"))
    first = Rig(Store.open(data_dir), cloud)

    async def sync_first() -> None:
        async with first.running():
            await until(lambda: first.store.revision() == 3)

    run(sync_first)
    first.store.close()
    late = [cloud.publish("order", f"L-{n}", _order(f"L-{n}")) for n in range(2)]

    second = Rig(Store.open(data_dir), cloud)

    async def sync_second() -> None:
        async with second.running():
            await until(lambda: second.store.revision() == late[-1])

    run(sync_second)
    assert cloud.watch_calls == [0, 3]
    assert second.count(second.metrics.changes_applied) == 2
    assert second.orders() == ["A-0", "A-1", "A-2", "L-0", "L-1"]
    second.store.close()


def test_a_crash_mid_apply_loses_nothing(data_dir: Path, cloud: MemoryTransport) -> None:
    for n in range(4):
        cloud.publish("order", f"A-{n}", _order(f"A-{n}"))
    rig = Rig(Store.open(data_dir), cloud)
    real_apply = rig.cache.apply

    def apply_then_crash(change: Any) -> None:
        real_apply(change)  # the entity row is written ...
        if change.key == "A-2":
            raise RuntimeError("power cut")  # ... and the process dies before the revision is

    rig.cache.apply = apply_then_crash  # type: ignore[method-assign]

    async def crash() -> None:
        stream = cloud.watch(0)

        async def follow() -> None:
            async for item in stream:
                rig.watcher.handle(item)

        with pytest.raises(RuntimeError, match="power cut"):
            await follow()
        await stream.aclose()

    run(crash)
    assert rig.store.revision() == 2
    assert rig.orders() == ["A-0", "A-1"]  # A-2 was rolled back with its revision
    rig.store.close()

    after = Rig(Store.open(data_dir), cloud)

    async def resume() -> None:
        async with after.running():
            await until(lambda: after.store.revision() == 4)

    run(resume)
    assert after.orders() == ["A-0", "A-1", "A-2", "A-3"]
    after.store.close()


def test_an_old_revision_resent_after_a_reconnect_is_ignored(store: Store, cloud: MemoryTransport) -> None:
    rev = cloud.publish("order", "A-1", _order("A-1", state="released"))
    rig = Rig(store, cloud)

    async def scenario() -> None:
        items = [item async for item in _take(cloud.watch(0), 1)]
        rig.watcher.handle(items[0])
        # The same change again, as a resumed stream could repeat it, with a different body.
        stale = items[0]
        stale.change.body = json.dumps(_order("A-1", state="cancelled")).encode()
        rig.watcher.handle(stale)

    run(scenario)
    assert store.revision() == rev
    assert rig.cache.order("A-1").state == "released"  # type: ignore[union-attr]


async def _take(stream: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    count = 0
    async for item in stream:
        yield item
        count += 1
        if count == n:
            break
    await stream.aclose()  # type: ignore[attr-defined]


def test_a_snapshot_replaces_the_cache_in_one_swap(store: Store, cloud: MemoryTransport) -> None:
    rig = Rig(store, cloud)
    # The agent knows an order the cloud has since deleted and compacted away.
    with store.atomic():
        store.conn.execute(
            "INSERT INTO orders (order_ref, body, state, revision) VALUES ('GONE', ?, '', 1)",
            (json.dumps(_order("GONE")),),
        )
        store.set_revision(1)
    for n in range(5):
        cloud.publish("order", f"S-{n}", _order(f"S-{n}"))
    cloud.publish("station", "S1", {"code": "S1", "printers": []})
    cloud.publish("order", "S-4", None)
    cloud.compact()

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head)

    run(scenario)
    assert rig.orders() == ["S-0", "S-1", "S-2", "S-3"]
    assert set(rig.cache.stations) == {"S1"}
    assert rig.count(rig.metrics.snapshots) == 1
    assert store.count("snapshot_staging") == 0


def test_a_stream_that_breaks_mid_snapshot_leaves_the_cache_as_it_was(
    store: Store, cloud: MemoryTransport
) -> None:
    with store.atomic():
        store.conn.execute(
            "INSERT INTO orders (order_ref, body, state, revision) VALUES ('OLD', ?, '', 1)",
            (json.dumps(_order("OLD")),),
        )
        store.set_revision(1)
    for n in range(6):
        cloud.publish("order", f"S-{n}", _order(f"S-{n}"))
    cloud.compact()
    cloud.break_stream_after = 4  # begin + 3 entities, then the stream dies
    rig = Rig(store, cloud)

    async def broken() -> None:
        with pytest.raises(SyncError):
            await rig.watcher.follow()

    run(broken)
    assert rig.orders() == ["OLD"]
    assert store.revision() == 1

    cloud.break_stream_after = None

    async def whole() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head)

    run(whole)
    assert rig.orders() == [f"S-{n}" for n in range(6)]


def test_templates_compile_on_arrival_and_a_broken_one_is_never_used(
    store: Store, cloud: MemoryTransport
) -> None:
    rig = Rig(store, cloud)
    cloud.publish("template_version", "shipping-4x6@1", {"language": "zpl", "source": ZPL, "active": True})

    async def first() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head)

    run(first)
    shelved = rig.cache.templates.get("shipping-4x6")
    assert shelved.version == 1
    assert b"A-1" in shelved.compiled.render({"order": {"order_ref": "A-1"}})  # type: ignore[union-attr]

    cloud.publish(
        "template_version", "shipping-4x6@2", {"language": "zpl", "source": "^XA{% if %}^XZ", "active": True}
    )

    async def second() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head)

    run(second)
    with pytest.raises(Exception, match="cannot be used") as unusable:
        rig.cache.templates.get("shipping-4x6")
    assert unusable.value.code == "template_unusable"  # type: ignore[attr-defined]
    recorded = {row["key"]: row for row in rig.cache.template_versions()}
    assert recorded["shipping-4x6@2"]["compile_error"]
    assert recorded["shipping-4x6@1"]["active"] == 0

    # A restart rebuilds the same view from the store without trusting the broken version.
    again = Cache(store)
    again.load()
    with pytest.raises(Exception, match="cannot be used"):
        again.templates.get("shipping-4x6")


def test_an_unusable_change_is_counted_and_does_not_stall_the_stream(
    store: Store, cloud: MemoryTransport
) -> None:
    rig = Rig(store, cloud)
    cloud.publish("order", "A-1", _order("A-1"))
    bad = cloud.publish("order", "A-2", _order("A-2"))
    cloud._log[-1].body = b"{not json"
    cloud.publish("mystery_kind", "x", {"a": 1})
    cloud.publish("order", "A-3", _order("A-3"))

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head)

    run(scenario)
    assert bad < cloud.head
    assert rig.orders() == ["A-1", "A-3"]
    assert rig.count(rig.metrics.changes_refused) == 2
    assert rig.count(rig.metrics.changes_applied) == 2


def test_the_watcher_reconnects_with_backoff_and_resets_after_a_healthy_stream(
    store: Store, cloud: MemoryTransport
) -> None:
    cloud.watch_failures = [SyncError("down", code="cloud_unreachable") for _ in range(3)]
    cloud.publish("order", "A-1", _order("A-1"))
    rig = Rig(store, cloud)

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == 1)
            assert rig.link.online
            assert rig.watcher.backoff.failures == 0
            cloud.break_stream_after = 0
            cloud.publish("order", "A-2", _order("A-2"))
            await until(lambda: len(cloud.watch_calls) >= 6, what="more reconnects")
            assert not rig.link.online
            assert "broke" in rig.link.last_error
            cloud.break_stream_after = None
            await until(lambda: store.revision() == 2)

    run(scenario)
    assert cloud.watch_calls[:4] == [0, 0, 0, 0]
    assert rig.count(rig.metrics.reconnects) >= 1


def test_an_auth_refusal_is_reported_on_the_link(store: Store, cloud: MemoryTransport) -> None:
    cloud.watch_failures = [AuthError("the credential was revoked: enroll again")] * 50
    rig = Rig(store, cloud)

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: rig.link.auth_refused)

    run(scenario)
    assert not rig.link.online
    assert "revoked" in rig.link.last_error


def test_backoff_is_full_jitter_capped_and_resettable() -> None:
    draws: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    backoff = Backoff(base_s=0.5, cap_s=4.0, draw=draw)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(low == 0.0 for low, _ in draws)
    backoff.reset()
    assert backoff.next_delay() == 0.5
    for _ in range(10_000):
        backoff.next_delay()  # a very long outage never overflows
    assert backoff.ceiling() == 4.0
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=0)


def test_heartbeats_measure_the_lag(store: Store) -> None:
    cloud = MemoryTransport(heartbeat_every_s=0.01)
    cloud.publish("order", "A-1", _order("A-1"))
    rig = Rig(store, cloud)

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == 1)
            await until(lambda: rig.link.cloud_revision == 1)
            assert rig.link.lag(store.revision()) == 0

    run(scenario)


def test_a_snapshot_checks_every_entity_and_keeps_order_states(store: Store, cloud: MemoryTransport) -> None:
    rig = Rig(store, cloud)
    for n in range(3000):
        cloud.publish("order", f"O-{n}", _order(f"O-{n}", state="released" if n % 2 else "cancelled"))
    cloud.publish("order", "BAD-JSON", _order("BAD-JSON"))
    cloud._log[-1].body = b"{not json"
    cloud.publish("order", "BAD-LIST", _order("BAD-LIST"))
    cloud._log[-1].body = b"[1, 2]"
    cloud.publish("order", "BAD-UTF8", _order("BAD-UTF8"))
    cloud._log[-1].body = b'{"order_ref": "\xff"}'
    cloud.publish("order", "ODD-STATE", _order("ODD-STATE", state=7))
    cloud.compact()

    async def scenario() -> None:
        async with rig.running():
            await until(lambda: store.revision() == cloud.head, timeout=15)

    run(scenario)
    assert store.count("orders") == 3001
    assert rig.cache.order("O-1").state == "released"  # type: ignore[union-attr]
    assert rig.cache.order("O-2").state == "cancelled"  # type: ignore[union-attr]
    assert rig.cache.order("ODD-STATE").state == ""  # type: ignore[union-attr]
    assert rig.cache.order("BAD-JSON") is None
    assert rig.count(rig.metrics.changes_refused) == 3


def test_a_cached_order_is_read_as_an_order_and_a_partial_one_is_refused(store: Store) -> None:
    cache = Cache(store)
    shipped = _order(
        "A-1", state="shipped", shipped_at="2026-01-02T03:04:05+00:00", wave={"id": 4, "position": 2}
    )
    with store.atomic():
        cache.apply(SyncChange(1, "order", "A-1", json.dumps(shipped).encode()))
        cache.apply(SyncChange(2, "order", "A-2", b'{"order_ref": "A-2"}'))
    read = cache.order("A-1")
    assert read is not None
    assert read.order.ship_to.city == "Austin"
    assert read.order.lines[0].sku == "MUG"
    assert (read.state, read.shipped_at) == ("shipped", "2026-01-02T03:04:05+00:00")
    # What the cloud adds beside the order (a wave, or a field a newer cloud sends) is kept as sent.
    assert read.cloud_fields == {"wave": {"id": 4, "position": 2}}
    assert read.sync_body() == {
        **read.order.model_dump(mode="json"),
        "state": "shipped",
        "shipped_at": shipped["shipped_at"],
        "wave": {"id": 4, "position": 2},
    }
    # The cloud never syncs a partial order; one that arrives anyway is refused by name, not packed.
    with pytest.raises(Conflict) as refused:
        cache.order("A-2")
    assert refused.value.code == "order_unusable"
    assert "order A-2" in refused.value.message
    assert "warehouse is missing" in refused.value.message
