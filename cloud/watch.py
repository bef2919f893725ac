"""The Watch stream's content: a snapshot or the change log after a revision, then live changes.

    feed = ChangeFeed(store)
    async for item in feed.stream(agent, after_revision):   # WatchResponse messages, forever
        ...

Database work runs in worker threads so the event loop that serves every stream never blocks.
A snapshot is read in one read transaction (one consistent view) but sent in pages, so a large
warehouse never sits in memory at once.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from sqlalchemy import Connection, or_, select

from cloud import schema
from cloud.agents import AgentIdentity
from cloud.orders import order_sync_body
from cloud.rulesets import active_rulesets
from cloud.store import CloudStore, dumps, utcnow
from cloud.template_rollout import effective_template_versions
from cloud.templates import template_version_body
from cloud.warehouses import warehouse_body
from cloud.waves import recent_wave_bodies
from dockside.sync import ChangeKind
from dockside.v1 import sync_pb2

__all__ = ["ChangeFeed"]

Change = tuple[str, str, str]  # kind, key, body


class ChangeFeed:
    """Builds each agent's Watch stream from the change log and the notifier."""

    def __init__(
        self,
        store: CloudStore,
        *,
        page_size: int = 500,
        heartbeat_s: float = 10.0,
        concurrent_snapshots: int = 8,
    ) -> None:
        self.store = store
        self.page_size = page_size
        self.heartbeat_s = heartbeat_s
        # A snapshot holds a database connection while it streams. Many agents asking at once
        # (a fleet restart) queue here, on the loop, instead of draining the connection pool
        # and then blocking the worker threads every other call needs.
        self._snapshots = asyncio.Semaphore(concurrent_snapshots)
        self._recent = _RecentChanges(store)

    async def stream(
        self, agent: AgentIdentity, after_revision: int
    ) -> AsyncIterator[sync_pb2.WatchResponse]:
        """Every change in the agent's scope after `after_revision`, then live ones, with heartbeats."""
        revision, horizon = await asyncio.to_thread(self.store.clock)
        # A revision ahead of ours comes from another database: the agent's cache is not ours.
        if after_revision <= 0 or after_revision < horizon or after_revision > revision:
            async with self._snapshots:
                snapshot = _Snapshot(self.store, agent, self.page_size)
                try:
                    while (page := await asyncio.to_thread(snapshot.next_page)) is not None:
                        for item in page:
                            yield item
                    after_revision = snapshot.revision
                finally:
                    snapshot.close()
        notifier = self.store.notifier
        idle = False
        while True:
            # Everything committed up to `known` is visible to the read that follows.
            known = notifier.latest
            # Woken by the notifier, every stream wants the same new changes: read them once. After
            # a timeout read the table itself: another process may have written without a signal.
            rows = None if idle else await self._recent.after(agent, after_revision, known, self.page_size)
            if rows is None:
                rows = await asyncio.to_thread(self._page, agent, after_revision)
            for revision_, kind, key, deleted, body in rows:
                yield _change(revision_, kind, key, body, deleted=deleted)
                after_revision = revision_
            if len(rows) == self.page_size:
                continue
            if idle and not rows:
                # Every change in the agent's scope up to `known` has been sent.
                yield sync_pb2.WatchResponse(
                    heartbeat=sync_pb2.Heartbeat(revision=max(known, after_revision))
                )
            # A timeout loops back to one more read: it catches writes made by another process.
            idle = not await notifier.wait_past(max(known, after_revision), self.heartbeat_s)
            if notifier.closed:
                return

    def _page(self, agent: AgentIdentity, after_revision: int) -> list[tuple[int, str, str, bool, str]]:
        table = schema.changes
        with self.store.read() as conn:
            rows = conn.execute(
                select(table.c.revision, table.c.kind, table.c.key, table.c.deleted, table.c.body)
                .where(
                    table.c.revision > after_revision,
                    table.c.tenant_id == agent.tenant_id,
                    or_(table.c.warehouse_id == agent.warehouse_id, table.c.warehouse_id.is_(None)),
                )
                .order_by(table.c.revision)
                .limit(self.page_size)
            ).all()
        return [(int(r.revision), r.kind, r.key, bool(r.deleted), r.body) for r in rows]


_Row = tuple[
    int, int, int | None, str, str, bool, str
]  # revision, tenant, warehouse, kind, key, deleted, body


class _RecentChanges:
    """The newest stretch of the whole change log, read once per advance and shared by all streams.

    A publish wakes thousands of streams at once; each would otherwise run its own query for the
    same few rows. The window covers revisions in (floor, top]: everything committed up to `top`
    (revision order is commit order, see sync_clock). A stream further behind than the window
    reads the table itself.
    """

    def __init__(self, store: CloudStore, *, capacity: int = 5_000, read_limit: int = 2_000) -> None:
        self._store = store
        self._capacity = capacity
        self._read_limit = read_limit
        self.floor = self.top = -1
        self._revisions: list[int] = []
        self._rows: list[_Row] = []
        self._lock = asyncio.Lock()

    async def after(
        self, agent: AgentIdentity, after_revision: int, known: int, limit: int
    ) -> list[tuple[int, str, str, bool, str]] | None:
        """The agent's changes after `after_revision` (up to `limit`), or None if out of the window."""
        if self.top < known:
            async with self._lock:
                if self.top < known:
                    await self._refresh(known)
        if after_revision < self.floor:
            return None
        revisions, rows = self._revisions, self._rows
        found: list[tuple[int, str, str, bool, str]] = []
        for revision, tenant_id, warehouse_id, kind, key, deleted, body in rows[
            bisect.bisect_right(revisions, after_revision) :
        ]:
            if tenant_id == agent.tenant_id and warehouse_id in (None, agent.warehouse_id):
                found.append((revision, kind, key, deleted, body))
                if len(found) >= limit:
                    break
        return found

    async def _refresh(self, known: int) -> None:
        if self.top < 0:  # first use: the window starts empty at the current revision
            self.floor = self.top = known
            return
        while self.top < known:
            fresh = await asyncio.to_thread(self._read, self.top)
            if not fresh:
                self.top = known
                break
            revisions = self._revisions + [row[0] for row in fresh]
            rows = self._rows + fresh
            if len(rows) > self._capacity:
                cut = len(rows) - self._capacity
                self.floor = revisions[cut - 1]
                revisions, rows = revisions[cut:], rows[cut:]
            self._revisions, self._rows = revisions, rows
            self.top = fresh[-1][0] if len(fresh) == self._read_limit else max(known, fresh[-1][0])

    def _read(self, after_revision: int) -> list[_Row]:
        table = schema.changes
        with self._store.read() as conn:
            return [
                (
                    int(r.revision),
                    int(r.tenant_id),
                    None if r.warehouse_id is None else int(r.warehouse_id),
                    r.kind,
                    r.key,
                    bool(r.deleted),
                    r.body,
                )
                for r in conn.execute(
                    select(
                        table.c.revision,
                        table.c.tenant_id,
                        table.c.warehouse_id,
                        table.c.kind,
                        table.c.key,
                        table.c.deleted,
                        table.c.body,
                    )
                    .where(table.c.revision > after_revision)
                    .order_by(table.c.revision)
                    .limit(self._read_limit)
                )
            ]


def _change(
    revision: int, kind: str, key: str, body: str, *, deleted: bool = False
) -> sync_pb2.WatchResponse:
    return sync_pb2.WatchResponse(
        change=sync_pb2.Change(
            revision=revision,
            kind=kind,
            key=key,
            deleted=deleted,
            body=b"" if deleted else body.encode("utf-8"),
        )
    )


class _Snapshot:
    """The snapshot as pages of WatchResponse (begin, every entity in scope, end), from one read view.

    Pages are pulled from worker threads one at a time; the lock lets `close` run safely while a
    page is still being read after the stream was cancelled.
    """

    def __init__(self, store: CloudStore, agent: AgentIdentity, page_size: int) -> None:
        self.revision = 0
        self._lock = threading.Lock()
        self._pages = self._read(store, agent, page_size)

    def next_page(self) -> list[sync_pb2.WatchResponse] | None:
        with self._lock:
            return next(self._pages, None)

    def close(self) -> None:
        with self._lock:
            self._pages.close()

    def _read(
        self, store: CloudStore, agent: AgentIdentity, page_size: int
    ) -> Generator[list[sync_pb2.WatchResponse], None, None]:
        with store.read(consistent=True) as conn:
            self.revision = revision = int(conn.execute(select(schema.sync_clock.c.revision)).scalar_one())
            page = [sync_pb2.WatchResponse(snapshot_begin=sync_pb2.SnapshotBegin(revision=revision))]
            for kind, key, body in _entities(conn, agent, page_size):
                page.append(_change(revision, kind, key, body))
                if len(page) >= page_size:
                    yield page
                    page = []
            page.append(sync_pb2.WatchResponse(snapshot_end=sync_pb2.SnapshotEnd(revision=revision)))
            yield page


def _entities(conn: Connection, agent: AgentIdentity, page_size: int) -> Iterator[Change]:
    """Every entity an agent's cache holds: warehouse, stations, templates, rulesets, recent waves, orders."""
    wh = schema.warehouses
    row = conn.execute(
        select(wh.c.code, wh.c.name, wh.c.ship_from).where(wh.c.id == agent.warehouse_id)
    ).one()
    yield ChangeKind.WAREHOUSE.value, row.code, dumps(warehouse_body(row.code, row.name, row.ship_from))
    st = schema.stations
    for code, body in conn.execute(
        select(st.c.code, st.c.body).where(st.c.warehouse_id == agent.warehouse_id).order_by(st.c.code)
    ):
        yield ChangeKind.STATION.value, code, body
    # One active version per template name: the tenant's, or the warehouse's staged one.
    for version in effective_template_versions(conn, agent.tenant_id, agent.warehouse_id):
        document: dict[str, Any] = {**template_version_body(version), "active": True}
        yield ChangeKind.TEMPLATE_VERSION.value, f"{document['name']}@{document['version']}", dumps(document)
    for name, ruleset in active_rulesets(conn, agent.tenant_id):
        yield ChangeKind.RULESET.value, name, ruleset
    for key, body in recent_wave_bodies(conn, agent.warehouse_id, row.code, utcnow()):
        yield ChangeKind.WAVE.value, key, body
    orders = schema.orders
    last_id = 0
    while True:
        rows = conn.execute(
            select(orders.c.id, orders.c.order_ref, orders.c.body, orders.c.state)
            .where(orders.c.warehouse_id == agent.warehouse_id, orders.c.id > last_id)
            .order_by(orders.c.id)
            .limit(page_size)
        ).all()
        for row_ in rows:
            yield ChangeKind.ORDER.value, row_.order_ref, order_sync_body(row_.body, row_.state)
        if len(rows) < page_size:
            return
        last_id = int(rows[-1].id)
