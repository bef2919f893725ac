"""A rule that takes long to evaluate holds no write: other writers go on while it runs.

Deterministic, not timed: the test makes the rule evaluation of one PushEvents wait until another
tenant's admin write has completed. Were rules evaluated inside the events' write transaction,
that write would wait for the transaction (SQLite has one writer) and the test would fail at its
deadline instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from cloud.access.principals import Role, create_api_token, create_tenant
from cloud.storage import schema
from dockside.rules import CompiledRuleset, Decision
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order

DEADLINE_S = 20


def _packed(order_ref: str, weight_g: int) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind="order_packed",
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps({"weight_g": weight_g}).encode(),
        sequence=1,
    )


def test_another_tenants_admin_write_completes_while_a_rule_is_being_evaluated(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.put_warehouse("WH1")
    ruleset = {"default": {"carrier": "POST", "weight_tolerance_g": 100}, "rules": []}
    version = cloud.api.post("/api/v1/rulesets/default/versions", json=ruleset).json()["version"]
    assert cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/publish").status_code == 200
    cloud.ingest(order("SLOW-1", expected_weight_g=1200))
    agent = cloud.enroll("WH1")
    create_tenant(cloud.store, code="other", name="Other")
    other_token = create_api_token(cloud.store, name="other-admin", role=Role.ADMIN, tenant="other")

    evaluating, release = threading.Event(), threading.Event()
    decide = CompiledRuleset.decide

    def held_decide(
        self: CompiledRuleset, order: Mapping[str, Any], weight_g: int, dimensions_mm: Sequence[float] = ()
    ) -> Decision:
        if order.get("order_ref") == "SLOW-1":
            evaluating.set()
            release.wait(DEADLINE_S)  # a slow rule, for as long as the test needs
        return decide(self, order, weight_g, dimensions_mm)

    monkeypatch.setattr(CompiledRuleset, "decide", held_decide)
    with (
        ThreadPoolExecutor(1) as pool,
        httpx.Client(
            base_url=f"http://{cloud.http_address}",
            headers={"Authorization": f"Bearer {other_token}"},
            timeout=DEADLINE_S / 2,
        ) as other,
    ):
        pushed = pool.submit(agent.push, _packed("SLOW-1", 1450))
        try:
            assert evaluating.wait(DEADLINE_S), "PushEvents never evaluated the ruleset"
            created = other.post("/api/v1/warehouses", json={"code": "OTHER-WH", "name": "Other's"})
            assert created.status_code == 201, created.text
            assert not pushed.done()  # the rule is still being evaluated
        finally:
            release.set()
        answer = pushed.result(timeout=DEADLINE_S)
    assert len(answer.acked) == 1
    # The decision made before the write still took effect in it.
    found = cloud.api.get("/api/v1/exceptions", params={"order_ref": "SLOW-1"}).json()["exceptions"]
    assert [(e["kind"], e["detail"]["tolerance_g"]) for e in found] == [("weight_out_of_tolerance", 100)]
    assert cloud.api.get("/api/v1/orders/SLOW-1").json()["state"] == "packed"


def test_an_active_ruleset_published_before_todays_limits_does_not_stop_the_events(
    cloud: RunningCloud, caplog: pytest.LogCaptureFixture
) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("OLD-1", expected_weight_g=1200))
    agent = cloud.enroll("WH1")
    # Stored as an older release accepted it: a pattern with a backreference, RE2 cannot run it.
    legacy = {
        "default": {"weight_tolerance_g": 10},
        # The cloud caches what it compiled by the ruleset's text: a name of its own per test.
        "rules": [{"name": f"old {uuid.uuid4()}", "when": "city =~ '(a)\\\\1'"}],
    }
    with cloud.store.write() as tx:
        tx.conn.execute(
            insert(schema.ruleset_versions).values(
                tenant_id=cloud.store.tenant_id(),
                name="default",
                version=1,
                body=json.dumps(legacy),
                created_at=tx.now,
                created_by="an older release",
                active=True,
                published_at=tx.now,
            )
        )
    event = _packed("OLD-1", 1450)
    with caplog.at_level(logging.WARNING, logger="cloud.sync.edge_events"):
        answer = agent.push(event)
    assert list(answer.acked) == [event.event_id]
    assert cloud.api.get("/api/v1/orders/OLD-1").json()["state"] == "packed"
    assert cloud.api.get("/api/v1/exceptions", params={"order_ref": "OLD-1"}).json()["exceptions"] == []
    assert any("no longer compiles" in record.getMessage() for record in caplog.records)
