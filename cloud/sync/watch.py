"""The Watch stream's content: a snapshot or the change log after a revision, then live changes.

    feed = ChangeFeed(store)
    async for wire in feed.stream(agent, after_revision, stop):   # serialized WatchResponses
        ...

The stream yields WatchResponse messages already serialized: a live change is read from the
database and serialized once, in a worker thread, and the same bytes go to every stream that
may see it. Database work runs in worker threads so the event loop that serves every stream
never blocks. A snapshot is read in one read transaction (one consistent view) but sent in
pages, so a large warehouse never sits in memory at once.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, or_, select

from cloud.decisions.rulesets import active_rulesets
from cloud.fleet.agents import AgentIdentity
from cloud.fleet.packers import packer_sync_bodies
from cloud.fleet.warehouses import warehouse_body
from cloud.labels.rollout import effective_template_versions
from cloud.labels.templates import template_version_body
from cloud.orders.ingest import order_sync_body
from cloud.orders.waves import recent_wave_bodies
from cloud.shipping.carriers import carrier_sync_bodies
from cloud.shipping.leases import lease_sync_bodies
from cloud.shipping.voids import voided_parcels, with_voided_parcels
from cloud.storage import schema
from cloud.storage.notifier import StreamStop, settle
from cloud.storage.store import CloudStore, dumps, utcnow
from dockside.sync import (
    ChangeKind,
    Heartbeat,
    SnapshotBegin,
    SnapshotEnd,
    SyncChange,
    WatchItem,
    watch_response,
)

__all__ = ["ChangeFeed"]

log = logging.getLogger(__name__)

Wire = tuple[int, bytes]  # revision, serialized WatchResponse


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
        self._recent = _RecentChanges(store, poll_s=min(1.0, heartbeat_s))

    async def stream(
        self, agent: AgentIdentity, after_revision: int, stop: StreamStop | None = None
    ) -> AsyncIterator[bytes]:
        """Every change in the agent's scope after `after_revision`, then live ones, with heartbeats,
        until `stop` is set (nothing is yielded after that) or the notifier closes."""
        stop = stop if stop is not None else StreamStop()
        revision, horizon = await asyncio.to_thread(self.store.clock)
        # A revision ahead of ours comes from another database: the agent's cache is not ours.
        if after_revision <= 0 or after_revision < horizon or after_revision > revision:
            async with self._snapshots:
                snapshot = _Snapshot(self.store, agent, self.page_size)
                try:
                    while (page := await asyncio.to_thread(snapshot.next_page)) is not None:
                        for wire in page:
                            if stop.is_set():
                                return
                            yield wire
                    after_revision = snapshot.revision
                finally:
                    snapshot.close()
        recent = self._recent
        recent.follow()
        scope = (agent.tenant_id, agent.warehouse_id)
        cursor = after_revision  # every change in scope up to here has been sent
        idle = False
        while not stop.is_set():
            # Everything committed up to `known` is in the window (or below its floor).
            known = recent.top
            rows = recent.after(scope, cursor, self.page_size)
            if rows is None:  # further behind than the window: read the table itself
                rows = await asyncio.to_thread(self._page, agent, cursor)
            for revision_, wire in rows:
                if stop.is_set():
                    return
                yield wire
                cursor = revision_
            if len(rows) == self.page_size:
                continue
            cursor = max(cursor, known)
            if idle and not rows and not stop.is_set():
                yield _heartbeat(cursor)
            idle = not await recent.wait_past(scope, cursor, self.heartbeat_s, stop)
            if self.store.notifier.closed:
                return

    def _page(self, agent: AgentIdentity, after_revision: int) -> list[Wire]:
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
        return [(int(r.revision), _change_wire(r.revision, r.kind, r.key, r.body, r.deleted)) for r in rows]


Scope = tuple[int, int | None]  # tenant id, warehouse id (None: every warehouse of the tenant)


@dataclass
class _ScopeLog:
    """The window's changes of one scope, in revision order."""

    revisions: list[int] = field(default_factory=list)
    wires: list[bytes] = field(default_factory=list)

    def after(self, revision: int, limit: int) -> list[Wire]:
        start = bisect.bisect_right(self.revisions, revision)
        end = start + limit
        return list(zip(self.revisions[start:end], self.wires[start:end], strict=True))

    def drop_through(self, revision: int) -> None:
        cut = bisect.bisect_right(self.revisions, revision)
        del self.revisions[:cut], self.wires[:cut]


class _RecentChanges:
    """The newest stretch of the whole change log, read once per advance and shared by all streams.

    A publish must reach thousands of streams at once. One task per event loop follows the
    notifier; when the log advances it reads the new rows once (one worker thread, one query),
    serializes each change once, files it under its scope, and only then wakes the streams of
    the scopes that changed. A woken stream finds its rows ready: no stream queries the
    database, none serializes, and a publish for one warehouse wakes no other warehouse's
    streams. When the notifier is quiet the task still reads the table every `poll_s`, for
    rows another process wrote without a signal.

    The window covers revisions in (floor, top]: everything committed up to `top` (revision
    order is commit order, see sync_clock). A stream further behind reads the table itself.
    """

    def __init__(
        self, store: CloudStore, *, capacity: int = 5_000, read_limit: int = 2_000, poll_s: float = 1.0
    ) -> None:
        self._store = store
        self._capacity = capacity
        self._read_limit = read_limit
        self._poll_s = poll_s
        self.floor = self.top = -1
        self._revisions: list[int] = []  # every row's revision, to find where to cut
        self._scopes: dict[Scope, _ScopeLog] = {}
        self._waiting: dict[Scope, set[asyncio.Future[None]]] = {}
        self._follower: asyncio.Task[None] | None = None

    def follow(self) -> None:
        """Make sure the window follows the log on the running event loop."""
        follower = self._follower
        loop = asyncio.get_running_loop()
        if follower is not None and not follower.done() and follower.get_loop() is loop:
            return
        if self.top < 0:  # first use: the window starts empty at the current revision
            self.floor = self.top = self._store.notifier.latest
        self._follower = loop.create_task(self._follow(), name="change window")

    def after(self, scope: Scope, after_revision: int, limit: int) -> list[Wire] | None:
        """The scope's changes after `after_revision` (up to `limit`), or None if out of the window."""
        if after_revision < self.floor:
            return None
        tenant_wide = self._scopes.get((scope[0], None))
        warehouse = self._scopes.get(scope)
        if tenant_wide is None or warehouse is None:
            only = tenant_wide or warehouse
            return only.after(after_revision, limit) if only is not None else []
        both = tenant_wide.after(after_revision, limit) + warehouse.after(after_revision, limit)
        both.sort(key=lambda row: row[0])
        return both[:limit]

    async def wait_past(self, scope: Scope, revision: int, seconds: float, stop: StreamStop) -> bool:
        """Wait up to `seconds` for the scope's changes past `revision`; False on timeout, stop or close."""
        if stop.is_set() or self._store.notifier.closed:
            return False
        if self.top > revision:
            return True
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        self._waiting.setdefault(scope, set()).add(woken)
        timer = loop.call_later(seconds, settle, woken)
        stop.waiting = woken
        try:
            await woken
        finally:
            timer.cancel()
            stop.waiting = None
            waiting = self._waiting.get(scope)
            if waiting is not None:
                waiting.discard(woken)
                if not waiting:
                    del self._waiting[scope]
        return self.top > revision and not stop.is_set()

    async def _follow(self) -> None:
        notifier = self._store.notifier
        try:
            while True:
                await notifier.wait_past(self.top, self._poll_s)
                if notifier.closed:
                    break
                try:
                    touched = await self._refresh(notifier.latest)
                except Exception:
                    # The database may be restarting: streams keep what they have and wait.
                    log.warning("cannot read the change log; retrying", exc_info=True)
                    await asyncio.sleep(self._poll_s)
                    continue
                self._wake(touched)
        finally:
            self._wake(None)

    async def _refresh(self, known: int) -> set[Scope]:
        """Read every row past `top` into the window; the scopes that got rows."""
        touched: set[Scope] = set()
        while True:
            fresh = await asyncio.to_thread(self._read, self.top)
            self._add(fresh)
            touched.update(scope for _, scope, _ in fresh)
            if len(fresh) < self._read_limit:
                break
        self.top = max(self.top, known)
        return touched

    def _wake(self, touched: set[Scope] | None) -> None:
        """Wake the streams of the `touched` scopes (a tenant-wide row touches all its warehouses);
        None wakes every stream."""
        tenants = None if touched is None else {tenant for tenant, warehouse in touched if warehouse is None}
        for scope in list(self._waiting):
            if touched is None or tenants is None or scope in touched or scope[0] in tenants:
                for future in self._waiting.pop(scope):
                    settle(future)

    def _add(self, fresh: list[tuple[int, Scope, bytes]]) -> None:
        for revision, scope, wire in fresh:
            log_ = self._scopes.get(scope)
            if log_ is None:
                log_ = self._scopes[scope] = _ScopeLog()
            log_.revisions.append(revision)
            log_.wires.append(wire)
            self._revisions.append(revision)
            self.top = revision
        if len(self._revisions) > self._capacity:
            self.floor = self._revisions[len(self._revisions) - self._capacity - 1]
            del self._revisions[: len(self._revisions) - self._capacity]
            for scope, log_ in list(self._scopes.items()):
                log_.drop_through(self.floor)
                if not log_.revisions:
                    del self._scopes[scope]

    def _read(self, after_revision: int) -> list[tuple[int, Scope, bytes]]:
        table = schema.changes
        with self._store.read() as conn:
            rows = conn.execute(
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
            ).all()
        return [
            (
                int(r.revision),
                (int(r.tenant_id), None if r.warehouse_id is None else int(r.warehouse_id)),
                _change_wire(r.revision, r.kind, r.key, r.body, r.deleted),
            )
            for r in rows
        ]


def _change_wire(revision: Any, kind: str, key: str, body: str, deleted: Any) -> bytes:
    change = SyncChange.of_text(int(revision), kind, key, body, deleted=bool(deleted))
    return watch_response(change).SerializeToString()


def _heartbeat(revision: int) -> bytes:
    return watch_response(Heartbeat(revision)).SerializeToString()


class _Snapshot:
    """The snapshot as pages of WatchResponse (begin, every entity in scope, end), from one read view.

    Pages are pulled from worker threads one at a time; the lock lets `close` run safely while a
    page is still being read after the stream was cancelled.
    """

    def __init__(self, store: CloudStore, agent: AgentIdentity, page_size: int) -> None:
        self.revision = 0
        self._lock = threading.Lock()
        self._pages = self._read(store, agent, page_size)

    def next_page(self) -> list[bytes] | None:
        """The next page, serialized (in the worker thread that reads it), or None after the end."""
        with self._lock:
            page = next(self._pages, None)
        return None if page is None else [watch_response(item).SerializeToString() for item in page]

    def close(self) -> None:
        with self._lock:
            self._pages.close()

    def _read(
        self, store: CloudStore, agent: AgentIdentity, page_size: int
    ) -> Generator[list[WatchItem], None, None]:
        with store.read(consistent=True) as conn:
            self.revision = revision = int(conn.execute(select(schema.sync_clock.c.revision)).scalar_one())
            page: list[WatchItem] = [SnapshotBegin(revision)]
            for change in _entities(conn, agent, revision, page_size):
                page.append(change)
                if len(page) >= page_size:
                    yield page
                    page = []
            page.append(SnapshotEnd(revision))
            yield page


def _entities(conn: Connection, agent: AgentIdentity, revision: int, page_size: int) -> Iterator[SyncChange]:
    """Every entity an agent's cache holds, as of `revision`: warehouse, stations, templates,
    rulesets, recent waves, carriers, the number leases of the warehouse's agents, its active
    packers, orders."""
    wh = schema.warehouses
    row = conn.execute(
        select(wh.c.code, wh.c.name, wh.c.ship_from, wh.c.weight_unit, wh.c.item_check).where(
            wh.c.id == agent.warehouse_id
        )
    ).one()
    body = dumps(warehouse_body(row.code, row.name, row.ship_from, row.weight_unit, row.item_check))
    yield SyncChange.of_text(revision, ChangeKind.WAREHOUSE.value, row.code, body)
    st = schema.stations
    for code, body in conn.execute(
        select(st.c.code, st.c.body).where(st.c.warehouse_id == agent.warehouse_id).order_by(st.c.code)
    ):
        yield SyncChange.of_text(revision, ChangeKind.STATION.value, code, body)
    # One active version per template name: the tenant's, or the warehouse's staged one.
    for version in effective_template_versions(conn, agent.tenant_id, agent.warehouse_id):
        document: dict[str, Any] = {**template_version_body(version), "active": True}
        key = f"{document['name']}@{document['version']}"
        yield SyncChange.of_text(revision, ChangeKind.TEMPLATE_VERSION.value, key, dumps(document))
    for name, ruleset in active_rulesets(conn, agent.tenant_id):
        yield SyncChange.of_text(revision, ChangeKind.RULESET.value, name, ruleset)
    for key, body in recent_wave_bodies(conn, agent.warehouse_id, row.code, utcnow()):
        yield SyncChange.of_text(revision, ChangeKind.WAVE.value, key, body)
    for key, body in carrier_sync_bodies(conn, agent.tenant_id):
        yield SyncChange.of_text(revision, ChangeKind.CARRIER.value, key, body)
    for key, body in lease_sync_bodies(conn, agent.tenant_id, agent.warehouse_id):
        yield SyncChange.of_text(revision, ChangeKind.NUMBER_LEASE.value, key, body)
    for key, body in packer_sync_bodies(conn, agent.warehouse_id):
        yield SyncChange.of_text(revision, ChangeKind.PACKER.value, key, body)
    orders = schema.orders
    last_id = 0
    while True:
        rows = conn.execute(
            select(orders.c.id, orders.c.order_ref, orders.c.body, orders.c.state)
            .where(orders.c.warehouse_id == agent.warehouse_id, orders.c.id > last_id)
            .order_by(orders.c.id)
            .limit(page_size)
        ).all()
        # An order with voided parcels says which labels were voided, as its change did.
        voided = voided_parcels(conn, agent.tenant_id, [row_.order_ref for row_ in rows])
        for row_ in rows:
            body = order_sync_body(row_.body, row_.state)
            if row_.order_ref in voided:
                body = with_voided_parcels(body, voided[row_.order_ref])
            yield SyncChange.of_text(revision, ChangeKind.ORDER.value, row_.order_ref, body)
        if len(rows) < page_size:
            return
        last_id = int(rows[-1].id)
