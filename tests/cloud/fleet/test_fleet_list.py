"""GET /api/v1/agents on a running cloud: each agent's latest self-update outcome and its revocation."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.cloud.conftest import RunningCloud


def _report(cloud: RunningCloud, credential: str, version: str, outcome: str, message: str) -> None:
    with httpx.Client(
        base_url=f"http://{cloud.http_address}", headers={"Authorization": f"Bearer {credential}"}, timeout=30
    ) as client:
        answer = client.post(
            "/api/v1/agent/update-reports", json={"version": version, "outcome": outcome, "message": message}
        )
    assert answer.status_code == 201, answer.text


def _fleet(cloud: RunningCloud) -> dict[str, dict[str, object]]:
    answer = cloud.api.get("/api/v1/agents")
    assert answer.status_code == 200, answer.text
    return {agent["id"]: agent for agent in answer.json()["agents"]}


def test_each_agent_shows_its_latest_update_outcome_or_null(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    updated, untouched = cloud.enroll("WH1"), cloud.enroll("WH1")
    _report(cloud, updated.credential, "0.2.0", "installed", "ok")
    _report(cloud, updated.credential, "0.3.0", "rolled_back", "0.3.0 did not answer its health check")

    fleet = _fleet(cloud)
    update = fleet[updated.agent_id]["update"]
    assert isinstance(update, dict)
    assert {k: update[k] for k in ("version", "outcome", "message")} == {
        "version": "0.3.0",
        "outcome": "rolled_back",
        "message": "0.3.0 did not answer its health check",
    }
    datetime.fromisoformat(update["reported_at"])
    assert fleet[untouched.agent_id]["update"] is None
    assert fleet[updated.agent_id]["revoked_at"] is None
    assert updated.credential not in str(fleet)


def test_a_revoked_agent_stays_listed_with_when_it_was_revoked(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    kept, revoked = cloud.enroll("WH1"), cloud.enroll("WH1")
    answer = cloud.api.post(f"/api/v1/agents/{revoked.agent_id}/revoke")
    assert answer.status_code == 200, answer.text

    fleet = _fleet(cloud)
    assert set(fleet) == {kept.agent_id, revoked.agent_id}
    assert fleet[revoked.agent_id]["revoked_at"] == answer.json()["revoked_at"]
    assert fleet[kept.agent_id]["revoked_at"] is None
