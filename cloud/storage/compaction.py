"""Change-log compaction: below a horizon only the latest change per entity is kept.

    result = compact(store, CompactionPolicy(keep_revisions=10_000, keep_for=timedelta(hours=1)))

The horizon only moves forward. An agent that resumes from a revision below it gets a snapshot
(cloud.sync.watch); one that resumes at or above it reads the log as before. Deleting only superseded
changes keeps resume correct even for a Watch that read the clock just before a compaction: it
may miss intermediate states of an entity, never its latest one.

`run_compaction` is the schedule `serve` runs: one pass at start, then every `every_s`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, exists, func, select, update

from cloud.storage import schema
from cloud.storage.store import CloudStore

__all__ = ["CompactionPolicy", "CompactionResult", "compact", "run_compaction"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """How much of the change log stays whole: the last `keep_revisions`, and anything younger
    than `keep_for` (agents offline that long still resume without a snapshot)."""

    keep_revisions: int = 10_000
    keep_for: timedelta = timedelta(hours=24)
    every_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What one pass did."""

    horizon: int
    removed: int


def compact(store: CloudStore, policy: CompactionPolicy) -> CompactionResult:
    """Advance the horizon as far as the policy allows and drop the superseded changes below it."""
    changes = schema.changes
    clock = schema.sync_clock
    with store.write() as tx:
        revision, horizon = tx.conn.execute(select(clock.c.revision, clock.c.horizon)).one()
        cutoff = tx.now - policy.keep_for
        candidate = tx.conn.execute(
            select(func.max(changes.c.revision)).where(
                changes.c.revision <= int(revision) - policy.keep_revisions,
                changes.c.recorded_at <= cutoff,
            )
        ).scalar()
        if candidate is None or int(candidate) <= int(horizon):
            return CompactionResult(horizon=int(horizon), removed=0)
        new_horizon = int(candidate)
        later = changes.alias("later")
        superseded = exists().where(
            and_(
                later.c.tenant_id == changes.c.tenant_id,
                later.c.warehouse_id.is_not_distinct_from(changes.c.warehouse_id),
                later.c.kind == changes.c.kind,
                later.c.key == changes.c.key,
                later.c.revision > changes.c.revision,
            )
        )
        removed = tx.conn.execute(
            delete(changes).where(changes.c.revision <= new_horizon, superseded)
        ).rowcount
        # Never backwards: another replica may have compacted further meanwhile.
        tx.conn.execute(
            update(clock).where(clock.c.id == 1, clock.c.horizon < new_horizon).values(horizon=new_horizon)
        )
    log.info("change log compacted to horizon %d (%d superseded changes removed)", new_horizon, removed)
    return CompactionResult(horizon=new_horizon, removed=int(removed))


async def run_compaction(store: CloudStore, policy: CompactionPolicy, stop: asyncio.Event) -> None:
    """Compact now and then every `policy.every_s` until `stop` is set; a failed pass is logged."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(compact, store, policy)
        except Exception:
            log.exception("change-log compaction failed; retrying at the next pass")
        try:
            await asyncio.wait_for(stop.wait(), policy.every_s)
        except TimeoutError:
            continue
