"""The audit log of admin writes and the CSV / JSON lines exports, over real HTTP."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest

from cloud import audit
from cloud.access import Principal, Role, create_api_token
from cloud.store import utcnow
from dockside.errors import InputError
from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud, order


def _entries(cloud: RunningCloud, **params: Any) -> list[dict[str, Any]]:
    response = cloud.api.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def test_every_admin_write_is_logged_with_who_what_before_and_after(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.api.post("/api/v1/warehouses", json={"code": "WH1", "name": "Renamed"})
    cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION)
    token = cloud.enrollment_token("WH1")
    cloud.api.post("/api/v1/templates/t1/versions", json=TEMPLATE)
    cloud.api.post("/api/v1/templates/t1/versions/1/publish")
    cloud.api.post("/api/v1/rulesets/default/versions", json={"default": {"carrier": "POST"}})
    cloud.api.post("/api/v1/rulesets/default/versions/1/publish")
    cloud.ingest(order("A1"))
    cloud.api.post("/api/v1/orders/A1/cancel", json={"reason": "fraud"})

    warehouse = _entries(cloud, object_kind="warehouse", object_key="WH1")
    assert [e["action"] for e in warehouse] == ["create_enrollment_token", "put_warehouse", "put_warehouse"]
    renamed, created = warehouse[1], warehouse[2]
    assert created["before"] is None
    assert created["after"]["name"] == "Warehouse WH1"
    assert renamed["before"]["name"] == "Warehouse WH1"
    assert renamed["after"]["name"] == "Renamed"
    assert (renamed["actor"], renamed["role"]) == ("tests", "admin")
    # The enrollment token is a secret: the log says one was made, never what it is.
    assert token not in json.dumps(warehouse)
    assert "expires_at" in warehouse[0]["after"]

    publish = _entries(cloud, object_kind="template", object_key="t1")[0]
    assert (publish["action"], publish["before"], publish["after"]) == (
        "publish_template_version",
        {"active_version": None},
        {"active_version": 1},
    )
    ruleset = _entries(cloud, object_kind="ruleset", object_key="default")
    assert [e["action"] for e in ruleset] == ["publish_ruleset_version", "create_ruleset_version"]
    (cancel,) = _entries(cloud, object_kind="order", object_key="A1")
    assert (cancel["before"], cancel["after"]) == ({"state": "created"}, {"state": "cancelled"})
    assert _entries(cloud, object_kind="station", object_key="WH1/S1")[0]["after"]["code"] == "S1"

    # By user: another admin's writes are apart from ours.
    other = create_api_token(cloud.store, name="nina", role=Role.ADMIN)
    cloud.api.post(
        "/api/v1/warehouses",
        json={"code": "WH2", "name": "Two"},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert [(e["actor"], e["object_key"]) for e in _entries(cloud, actor="nina")] == [("nina", "WH2")]
    assert all(e["actor"] == "tests" for e in _entries(cloud, actor="tests"))
    later = (utcnow() + timedelta(minutes=5)).isoformat()
    assert _entries(cloud, since=later) == []


def test_only_admins_read_the_audit_log(cloud: RunningCloud) -> None:
    for role in (Role.EDITOR, Role.VIEWER, Role.INTEGRATION):
        token = create_api_token(cloud.store, name=role.value, role=role)
        headers = {"Authorization": f"Bearer {token}"}
        assert cloud.api.get("/api/v1/audit", headers=headers).status_code == 403
        assert cloud.api.get("/api/v1/export/audit", headers=headers).status_code == 403


def test_the_audit_log_is_kept_at_least_six_months(cloud: RunningCloud) -> None:
    caller = Principal(tenant_id=cloud.store.tenant_id(), token_name="tests", role=Role.ADMIN)
    audit.record(cloud.store, caller, "put_warehouse", "warehouse", "OLD", None, {"code": "OLD"})
    with pytest.raises(InputError, match="at least 183 days"):
        audit.purge_audit(cloud.store, keep_days=30)
    assert audit.purge_audit(cloud.store, now=utcnow() + timedelta(days=150)) == 0
    assert len(_entries(cloud, object_key="OLD")) == 1
    assert audit.purge_audit(cloud.store, now=utcnow() + timedelta(days=200)) == 1
    assert _entries(cloud, object_key="OLD") == []


def test_orders_exceptions_and_audit_export_as_csv_and_json_lines(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    hostile = order("X3", warehouse="WH2", service_level="=HYPERLINK(1)")
    cloud.ingest(order("X1"), order("X2", value=None), hostile)
    cloud.api.post("/api/v1/orders/X2/state", json={"state": "released"})

    lines = cloud.api.get("/api/v1/export/orders", params={"format": "jsonl"})
    assert lines.status_code == 200
    assert lines.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [(r["order_ref"], r["state"]) for r in records] == [
        ("X1", "created"),
        ("X2", "released"),
        ("X3", "created"),
    ]
    assert records[0]["ship_to"]["city"] == "Springfield"

    table = cloud.api.get("/api/v1/export/orders", params={"format": "csv"})
    assert table.headers["content-type"].startswith("text/csv")
    assert 'filename="dockside-orders.csv"' in table.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [row["order_ref"] for row in rows] == ["X1", "X2", "X3"]
    # A cell a spreadsheet would run as a formula stays text.
    assert rows[2]["service_level"] == "'=HYPERLINK(1)"
    assert rows[0]["value"] == "49.90"
    assert rows[1]["value"] == ""
    assert json.loads(rows[0]["lines"]) == [{"sku": "SKU-1", "qty": 2, "description": ""}]

    # A token for WH1 exports WH1's orders only.
    scoped = create_api_token(cloud.store, name="wh1", role=Role.VIEWER, warehouses=["WH1"])
    mine = cloud.api.get("/api/v1/export/orders", headers={"Authorization": f"Bearer {scoped}"})
    assert [json.loads(line)["order_ref"] for line in mine.text.splitlines()] == ["X1", "X2"]

    audit_rows = list(
        csv.DictReader(io.StringIO(cloud.api.get("/api/v1/export/audit", params={"format": "csv"}).text))
    )
    assert [row["action"] for row in audit_rows][-1] == "change_order_state"
    assert json.loads(audit_rows[-1]["after"]) == {"state": "released"}
    empty = cloud.api.get("/api/v1/export/exceptions", params={"format": "csv"})
    assert empty.text.strip() == ",".join(
        [
            *("id", "kind", "status", "warehouse", "order_ref", "assignee", "message", "comment"),
            *("opened_at", "updated_at", "resolved_at", "detail"),
        ]
    )
    assert cloud.api.get("/api/v1/export/nothing").status_code == 422
    assert cloud.api.get("/api/v1/export/orders", params={"format": "xml"}).status_code == 422
