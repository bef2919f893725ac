"""Change-log compaction: latest change per entity below an advancing horizon, and resume around it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cloud.storage import schema
from cloud.storage.compaction import CompactionPolicy, compact
from cloud.storage.store import ChangeRecord, CloudStore
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order

EVERYTHING_OLD = CompactionPolicy(keep_revisions=1, keep_for=timedelta(0))


def _write(store: CloudStore, *keys: str) -> list[int]:
    tenant = store.tenant_id()
    with store.write() as tx:
        return tx.append_changes(
            [
                ChangeRecord(tenant, None, "template_version", key, body=f'{{"n":{i}}}')
                for i, key in enumerate(keys)
            ]
        )


def _log(store: CloudStore) -> list[tuple[int, str, str]]:
    table = schema.changes
    with store.read() as conn:
        return [
            (int(row.revision), row.key, row.body)
            for row in conn.execute(
                select(table.c.revision, table.c.key, table.c.body).order_by(table.c.revision)
            )
        ]


def test_only_the_latest_change_per_entity_stays_below_the_horizon(store: CloudStore) -> None:
    revisions = _write(store, "a@1", "b@1", "a@1", "c@1", "a@1", "b@1", "d@1")
    result = compact(store, EVERYTHING_OLD)
    assert result.horizon == revisions[-2]  # everything but the last revision may be compacted
    assert result.removed == 3  # two older a@1, one older b@1
    assert [key for _, key, _ in _log(store)] == ["c@1", "a@1", "b@1", "d@1"]
    assert store.clock() == (revisions[-1], revisions[-2])


def test_the_horizon_never_moves_back_and_a_quiet_log_is_left_alone(store: CloudStore) -> None:
    _write(store, "a@1", "a@1", "a@1")
    first = compact(store, EVERYTHING_OLD)
    again = compact(store, EVERYTHING_OLD)
    assert again.removed == 0
    assert again.horizon == first.horizon
    # A policy that keeps more would put the horizon lower: it stays where it is.
    assert compact(store, CompactionPolicy(keep_revisions=1_000)).horizon == first.horizon
    assert store.clock()[1] == first.horizon


def test_young_changes_are_kept_whatever_their_revision(store: CloudStore) -> None:
    _write(store, "a@1", "a@1", "a@1", "a@1")
    result = compact(store, CompactionPolicy(keep_revisions=0, keep_for=timedelta(hours=1)))
    assert result.removed == 0
    assert len(_log(store)) == 4


def _first(stream) -> sync_pb2.WatchResponse:
    item = next(stream)
    return item


def test_after_compaction_old_agents_get_a_snapshot_and_current_ones_resume(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("A-1"), order("A-2"))
    agent = cloud.enroll("WH1")
    cloud.ingest(order("A-1", expected_weight_g=1300))  # supersedes A-1's first change
    before_last = cloud.store.current_revision()
    cloud.ingest(order("A-3"))
    horizon = compact(cloud.store, EVERYTHING_OLD).horizon
    assert horizon == before_last
    stale = agent.watch(1)
    assert _first(stale).HasField("snapshot_begin")
    stale.cancel()
    resumed = agent.watch(horizon)
    change = _first(resumed)
    assert change.HasField("change")
    assert change.change.key == "A-3"
    resumed.cancel()
