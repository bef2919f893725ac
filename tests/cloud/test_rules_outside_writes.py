"""A rule that takes long to evaluate holds no write: other writers go on while it runs.

Deterministic, not timed: the test makes the rule evaluation of one PushEvents wait until another
tenant's admin write has completed. Were rules evaluated inside the events' write transaction,
that write would wait for the transaction (SQLite has one writer) and the test would fail at its
deadline instead.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from cloud.access import Role, create_api_token, create_tenant
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
