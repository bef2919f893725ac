"""Staged template rollout and rollback, seen by real agents' caches over real gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cloud.access.principals import Role, create_api_token
from dockside.sync import read_watch_item
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from tests.cloud.conftest import TEMPLATE, Agent, RunningCloud


class EdgeCache:
    """A real agent cache fed from a Watch stream, as the agent applies changes."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.store = Store.connect(":memory:")
        self.cache = Cache(self.store)
        self.revision = 0

    def catch_up(self, cloud: RunningCloud) -> list[tuple[str, str]]:
        """Apply every change (or the snapshot) up to the cloud's current revision; returns (kind, key)."""
        target = cloud.store.current_revision()
        seen: list[tuple[str, str]] = []
        if target == self.revision:
            return seen
        stream = self.agent.watch(self.revision)
        try:
            with self.store.atomic():
                in_snapshot = False
                for item in stream:
                    if item.HasField("snapshot_begin"):
                        in_snapshot = True
                    elif item.HasField("change"):
                        self.cache.apply(read_watch_item(item))
                        seen.append((item.change.kind, item.change.key))
                        self.revision = max(self.revision, item.change.revision)
                    elif item.HasField("heartbeat"):
                        # Changes for other warehouses never come: the heartbeat says we are level.
                        self.revision = max(self.revision, item.heartbeat.revision)
                    elif item.HasField("snapshot_end"):
                        self.revision = item.snapshot_end.revision
                        in_snapshot = False
                    if self.revision >= target and not in_snapshot:
                        break
        finally:
            stream.cancel()
        self.cache.after_commit()
        return seen

    def active(self, name: str) -> int:
        return int(self.cache.templates.get(name).version)

    def active_rows(self, name: str) -> list[int]:
        rows = self.store.conn.execute("SELECT body FROM template_versions").fetchall()
        return sorted(
            json.loads(body)["version"]
            for (body,) in rows
            if json.loads(body)["name"] == name and json.loads(body)["active"]
        )

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def fleet(cloud: RunningCloud) -> Iterator[dict[str, EdgeCache]]:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    caches = {wh: EdgeCache(cloud.enroll(wh)) for wh in ("WH1", "WH2")}
    yield caches
    for cache in caches.values():
        cache.close()


def _versions(cloud: RunningCloud, count: int) -> None:
    for index in range(count):
        body = {**TEMPLATE, "source": TEMPLATE["source"].replace("^FO50", f"^FO{50 + index}")}
        assert cloud.api.post("/api/v1/templates/t1/versions", json=body).status_code == 201


def _publish(cloud: RunningCloud, version: int, warehouses: list[str] | None = None) -> Any:
    body = {"warehouses": warehouses} if warehouses is not None else None
    response = cloud.api.post(f"/api/v1/templates/t1/versions/{version}/publish", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_staged_version_reaches_only_the_chosen_warehouses_then_everyone(
    cloud: RunningCloud, fleet: dict[str, EdgeCache]
) -> None:
    _versions(cloud, 3)
    _publish(cloud, 1)
    for cache in fleet.values():
        cache.catch_up(cloud)
        assert cache.active("t1") == 1

    status = _publish(cloud, 2, ["WH1"])
    assert status == {"name": "t1", "active_version": 1, "warehouses": {"WH1": 2}}
    assert fleet["WH1"].catch_up(cloud) == [("template_version", "t1@1"), ("template_version", "t1@2")]
    assert fleet["WH2"].catch_up(cloud) == []
    assert (fleet["WH1"].active("t1"), fleet["WH2"].active("t1")) == (2, 1)
    assert fleet["WH1"].active_rows("t1") == [2]
    assert cloud.api.get("/api/v1/templates/t1/rollout").json() == status

    # A new agent in WH1 starts from a snapshot: exactly the staged version, active.
    newcomer = EdgeCache(cloud.enroll("WH1"))
    try:
        newcomer.catch_up(cloud)
        assert newcomer.active("t1") == 2
        assert newcomer.active_rows("t1") == [2]
    finally:
        newcomer.close()

    # Everyone: WH2 moves, WH1's staged row goes, each agent holds exactly one active version.
    _publish(cloud, 2)
    for cache in fleet.values():
        cache.catch_up(cloud)
        assert cache.active("t1") == 2
        assert cache.active_rows("t1") == [2]
    assert cloud.api.get("/api/v1/templates/t1/rollout").json()["warehouses"] == {}

    # Stage 3 in WH2, then publish 3 everywhere: the staged warehouse sees no second active row.
    _publish(cloud, 3, ["WH2"])
    _publish(cloud, 3)
    for cache in fleet.values():
        cache.catch_up(cloud)
        assert cache.active_rows("t1") == [3]


def test_rollback_to_an_earlier_version_everywhere_or_in_one_warehouse(
    cloud: RunningCloud, fleet: dict[str, EdgeCache]
) -> None:
    _versions(cloud, 2)
    _publish(cloud, 1)
    _publish(cloud, 2)
    back = cloud.api.post("/api/v1/templates/t1/rollback", json={"version": 1, "warehouses": ["WH2"]})
    assert back.status_code == 200, back.text
    assert back.json()["warehouses"] == {"WH2": 1}
    for cache in fleet.values():
        cache.catch_up(cloud)
    assert (fleet["WH1"].active("t1"), fleet["WH2"].active("t1")) == (2, 1)
    everywhere = cloud.api.post("/api/v1/templates/t1/rollback", json={"version": 1})
    assert everywhere.json()["version"] == 1
    for cache in fleet.values():
        cache.catch_up(cloud)
        assert cache.active_rows("t1") == [1]
    actions = [
        e["action"] for e in cloud.api.get("/api/v1/audit", params={"object_key": "t1"}).json()["entries"]
    ]
    assert actions.count("rollback_template") == 2
    assert cloud.api.post("/api/v1/templates/t1/rollback", json={"version": 9}).status_code == 404


def test_staging_is_refused_for_unknown_or_out_of_scope_warehouses(
    cloud: RunningCloud, fleet: dict[str, Any]
) -> None:
    _versions(cloud, 1)
    unknown = cloud.api.post("/api/v1/templates/t1/versions/1/publish", json={"warehouses": ["NOPE"]})
    assert unknown.status_code == 404
    empty = cloud.api.post("/api/v1/templates/t1/versions/1/publish", json={"warehouses": []})
    assert empty.status_code == 422
    scoped = create_api_token(cloud.store, name="wh1-editor", role=Role.EDITOR, warehouses=["WH1"])
    headers = {"Authorization": f"Bearer {scoped}"}
    assert cloud.api.post("/api/v1/templates/t1/versions/1/publish", headers=headers).status_code == 403
    other = cloud.api.post(
        "/api/v1/templates/t1/versions/1/publish", json={"warehouses": ["WH2"]}, headers=headers
    )
    assert other.status_code == 404
    mine = cloud.api.post(
        "/api/v1/templates/t1/versions/1/publish", json={"warehouses": ["WH1"]}, headers=headers
    )
    assert mine.json()["warehouses"] == {"WH1": 1}
    assert cloud.api.get("/api/v1/templates/nothing/rollout").status_code == 404
