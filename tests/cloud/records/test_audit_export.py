"""The audit log of admin writes and the CSV / JSON lines exports, over real HTTP."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from cloud.access.principals import Principal, Role, create_api_token, create_token
from cloud.fleet.releases import PUBLIC_KEY_ENV, generate_release_key, sign_release
from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.records import audit
from cloud.storage import schema
from cloud.storage.store import utcnow
from cloud.webhooks.targets import ALLOW_PRIVATE_ENV
from dockside.errors import InputError
from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud, order


def _entries(cloud: RunningCloud, **params: Any) -> list[dict[str, Any]]:
    response = cloud.api.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def _actor_of(cloud: RunningCloud, name: str) -> str:
    """The audit actor id of the (one) token called `name`."""
    (token,) = [token for token in cloud.api.get("/api/v1/tokens").json()["tokens"] if token["name"] == name]
    return f"token:{token['id']}"


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
    tests_actor = _actor_of(cloud, "tests")
    assert (renamed["actor"], renamed["actor_name"], renamed["role"]) == (tests_actor, "tests", "admin")
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
    other = create_token(cloud.store, name="nina", role=Role.ADMIN)
    # A second token with the same name is another actor: the audit tells them apart by id.
    namesake = create_token(cloud.store, name="nina", role=Role.ADMIN)
    for token, code in ((other, "WH2"), (namesake, "WH3")):
        cloud.api.post(
            "/api/v1/warehouses",
            json={"code": code, "name": "Two"},
            headers={"Authorization": f"Bearer {token.secret}"},
        )
    by_other = _entries(cloud, actor=f"token:{other.id}")
    assert [(e["actor_name"], e["object_key"]) for e in by_other] == [("nina", "WH2")]
    by_namesake = _entries(cloud, actor=f"token:{namesake.id}")
    assert [(e["actor_name"], e["object_key"]) for e in by_namesake] == [("nina", "WH3")]
    assert _entries(cloud, actor="nina") == []
    assert all(e["actor_name"] == "tests" for e in _entries(cloud, actor=tests_actor))
    later = (utcnow() + timedelta(minutes=5)).isoformat()
    assert _entries(cloud, since=later) == []


def test_only_admins_read_the_audit_log(cloud: RunningCloud) -> None:
    for role in (Role.EDITOR, Role.VIEWER, Role.INTEGRATION):
        token = create_api_token(cloud.store, name=role.value, role=role)
        headers = {"Authorization": f"Bearer {token}"}
        assert cloud.api.get("/api/v1/audit", headers=headers).status_code == 403
        assert cloud.api.get("/api/v1/export/audit", headers=headers).status_code == 403


def test_the_audit_log_is_kept_at_least_six_months(cloud: RunningCloud) -> None:
    caller = Principal(
        tenant_id=cloud.store.tenant_id(), token_name="tests", role=Role.ADMIN, actor="cli:tests"
    )
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
    assert json.loads(rows[0]["lines"]) == [
        {
            "sku": "SKU-1",
            "qty": 2,
            "description": "",
            "barcode": "",
            "hs_code": "",
            "origin_country": "",
            "unit_value": None,
        }
    ]

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


# Write routes under /api/v1 that are not admin writes, and why:
NOT_ADMIN_WRITES = {
    # Signing in and out is a person's session, not a change to the tenant's data.
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    # An agent reporting how its update went (its own credential; kept in the release's reports).
    ("POST", "/api/v1/agent/update-reports"),
    # Simulating a draft ruleset reads past orders and writes nothing.
    ("POST", "/api/v1/rulesets/{name}/versions/{n}/simulate"),
}

_BINARY = b"#!/bin/sh\necho 'dockside-agent, version 0.3.0'\n"
S10 = {"scheme": "mod11", "prefix": "RR", "suffix": "US", "digits": 8}


def _labelled_parcel(cloud: RunningCloud, order_ref: str, carrier: str) -> None:
    """A parcel the edge labelled (cloud.orders.parcels writes these from label events)."""
    with cloud.store.write() as tx:
        tx.conn.execute(
            insert(schema.parcels).values(
                tenant_id=cloud.store.tenant_id(),
                order_ref=order_ref,
                number=1,
                tracking_number="RR000000015US",
                carrier=carrier,
                service="",
                weight_g=1000,
                documents="[]",
                state="labelled",
                labelled_at=tx.now,
            )
        )


def _open_exception(cloud: RunningCloud) -> int:
    with cloud.store.write() as tx:
        warehouse_id = tx.conn.execute(
            select(schema.warehouses.c.id).where(schema.warehouses.c.code == "WH1")
        ).scalar_one()
        return open_exception(
            tx,
            tenant_id=cloud.store.tenant_id(),
            warehouse_id=warehouse_id,
            order_ref="A1",
            kind=ExceptionKind.RAISED_AT_EDGE,
            message="scale says 0 g",
            detail={},
        )


def test_every_admin_write_route_writes_an_audit_entry(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Derived from the app's own route table: a new write route without an audit entry fails here."""
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    private_key, public_key = generate_release_key()
    monkeypatch.setenv(PUBLIC_KEY_ENV, public_key)
    spec = cloud.api.get("/openapi.json").json()
    writes = {
        (method.upper(), path)
        for path, methods in spec["paths"].items()
        for method in methods
        if path.startswith("/api/v1/") and method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert writes >= NOT_ADMIN_WRITES, "a documented exception is no longer a route: drop it"
    release = {
        "params": {"version": "0.3.0"},
        "content": _BINARY,
        "headers": {
            "X-Release-Signature": sign_release(private_key, "0.3.0", _BINARY),
            "Content-Type": "application/octet-stream",
        },
    }
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["order.state_changed"]}
    user = {"email": "ops@example.com", "name": "Ops", "password": "correct horse battery staple"}
    # Each route with one call that succeeds, in an order where each finds what it needs.
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/warehouses", "/api/v1/warehouses", {"json": {"code": "WH1", "name": "One"}}),
        ("POST", "/api/v1/warehouses/{wh}/stations", "/api/v1/warehouses/WH1/stations", {"json": STATION}),
        (
            "POST",
            "/api/v1/warehouses/{wh}/packers",
            "/api/v1/warehouses/WH1/packers",
            {"json": {"name": "Maria", "badge": "B-0001", "pin": "4821"}},
        ),
        (
            "PATCH",
            "/api/v1/warehouses/{wh}/packers/{packer_id}",
            "/api/v1/warehouses/WH1/packers/1",  # the first packer of a new cloud
            {"json": {"name": "Maria L."}},
        ),
        (
            "POST",
            "/api/v1/warehouses/{wh}/enrollment-tokens",
            "/api/v1/warehouses/WH1/enrollment-tokens",
            {"json": {"ttl_s": 60}},
        ),
        ("POST", "/api/v1/templates/{name}/versions", "/api/v1/templates/t1/versions", {"json": TEMPLATE}),
        (
            "POST",
            "/api/v1/templates/{name}/versions/{n}/publish",
            "/api/v1/templates/t1/versions/1/publish",
            {},
        ),
        (
            "POST",
            "/api/v1/templates/{name}/rollback",
            "/api/v1/templates/t1/rollback",
            {"json": {"version": 1}},
        ),
        (
            "POST",
            "/api/v1/rulesets/{name}/versions",
            "/api/v1/rulesets/r1/versions",
            {"json": {"default": {"carrier": "POST"}}},
        ),
        (
            "POST",
            "/api/v1/rulesets/{name}/versions/{n}/publish",
            "/api/v1/rulesets/r1/versions/1/publish",
            {},
        ),
        ("POST", "/api/v1/orders", "/api/v1/orders", {"json": {"orders": [order("A1"), order("A2")]}}),
        (
            "POST",
            "/api/v1/orders/{order_ref}/state",
            "/api/v1/orders/A1/state",
            {"json": {"state": "released"}},
        ),
        (
            "POST",
            "/api/v1/orders/{order_ref}/parcels/{number}/label",
            "/api/v1/orders/A1/parcels/1/label",
            {
                "json": {
                    "format": "zpl",
                    "data_base64": base64.b64encode(b"^XA^FO50,50^FDLABEL^FS^XZ").decode(),
                }
            },
        ),
        (
            "POST",
            "/api/v1/orders/{order_ref}/parcels/{number}/void",
            "/api/v1/orders/A1/parcels/1/void",
            {"json": {"reason": "label torn"}},
        ),
        ("POST", "/api/v1/orders/{order_ref}/cancel", "/api/v1/orders/A1/cancel", {"json": {"reason": "x"}}),
        (
            "POST",
            "/api/v1/orders/{order_ref}/erase-personal-data",
            "/api/v1/orders/A1/erase-personal-data",
            {},
        ),
        (
            "POST",
            "/api/v1/waves",
            "/api/v1/waves",
            {"json": {"warehouse": "WH1", "station": "S1", "order_refs": ["A2"]}},
        ),
        (
            "POST",
            "/api/v1/exceptions/{exception_id}/assign",
            "/api/v1/exceptions/{x}/assign",
            {"json": {"assignee": "maria"}},
        ),
        ("POST", "/api/v1/exceptions/{exception_id}/acknowledge", "/api/v1/exceptions/{x}/acknowledge", {}),
        (
            "POST",
            "/api/v1/exceptions/{exception_id}/resolve",
            "/api/v1/exceptions/{x}/resolve",
            {"json": {"comment": "ok"}},
        ),
        (
            "POST",
            "/api/v1/carriers",
            "/api/v1/carriers",
            {"json": {"code": "POST", "name": "Post", "tracking": {"kind": "range", "format": S10}}},
        ),
        (
            "POST",
            "/api/v1/carriers/{code}/ranges",
            "/api/v1/carriers/POST/ranges",
            {"json": {"first": 1, "last": 100}},
        ),
        (
            "POST",
            "/api/v1/warehouses/{warehouse}/manifests",
            "/api/v1/warehouses/WH1/manifests",
            {"json": {"carrier": "POST"}},
        ),
        ("POST", "/api/v1/manifests/{manifest_id}/handover", "/api/v1/manifests/{manifest}/handover", {}),
        ("POST", "/api/v1/webhooks", "/api/v1/webhooks", {"json": hook}),
        (
            "POST",
            "/api/v1/webhooks/{webhook_id}/replay",
            "/api/v1/webhooks/1/replay",
            {"json": {"since": "2026-01-01T00:00:00Z"}},
        ),
        ("DELETE", "/api/v1/webhooks/{webhook_id}", "/api/v1/webhooks/1", {}),
        ("POST", "/api/v1/agents/{agent_id}/revoke", "/api/v1/agents/{agent}/revoke", {}),
        ("POST", "/api/v1/releases", "/api/v1/releases", release),
        (
            "POST",
            "/api/v1/releases/{version}/assign",
            "/api/v1/releases/0.3.0/assign",
            {"json": {"warehouses": ["WH1"]}},
        ),
        ("POST", "/api/v1/tokens", "/api/v1/tokens", {"json": {"name": "oms", "role": "integration"}}),
        ("POST", "/api/v1/tokens/{token_id}/revoke", "/api/v1/tokens/{token}/revoke", {}),
        ("POST", "/api/v1/users", "/api/v1/users", {"json": user}),
        ("POST", "/api/v1/users/{user_id}/disable", "/api/v1/users/{user}/disable", {}),
        ("POST", "/api/v1/users/{user_id}/enable", "/api/v1/users/{user}/enable", {}),
        ("POST", "/api/v1/users/{user_id}/reset-password", "/api/v1/users/{user}/reset-password", {}),
        ("POST", "/api/v1/users/{user_id}/reset-totp", "/api/v1/users/{user}/reset-totp", {}),
        (
            "PUT",
            "/api/v1/alerts/thresholds/{alert_kind}",
            "/api/v1/alerts/thresholds/reprint_burst",
            {"json": {"count": 20, "window_s": 60}},
        ),
    ]
    missing = writes - NOT_ADMIN_WRITES - {(method, route) for method, route, _, _ in calls}
    assert not missing, (
        f"write routes with no audit check: add a call for each to this test: {sorted(missing)}"
    )
    exception_id = ""
    tests_actor = _actor_of(cloud, "tests")
    for method, route, path, request in calls:
        if "{token}" in path:
            path = path.replace("{token}", str(create_token(cloud.store, name="old", role=Role.VIEWER).id))
        if "{user}" in path:
            (made,) = cloud.api.get("/api/v1/users").json()["users"]
            path = path.replace("{user}", str(made["id"]))
        if route == "/api/v1/templates/{name}/rollback":
            # Go back from version 2 to version 1.
            created = cloud.api.post("/api/v1/templates/t1/versions", json=TEMPLATE)
            assert created.status_code == 201, created.text
            assert cloud.api.post("/api/v1/templates/t1/versions/2/publish").status_code == 200
        if "{x}" in path:
            exception_id = exception_id or str(_open_exception(cloud))
            path = path.replace("{x}", exception_id)
        if "{agent}" in path:
            path = path.replace("{agent}", cloud.enroll("WH1").agent_id)
        if route == "/api/v1/warehouses/{warehouse}/manifests":
            _labelled_parcel(cloud, "A2", "POST")
        if "{manifest}" in path:
            with cloud.store.read() as conn:
                path = path.replace(
                    "{manifest}", str(conn.execute(select(schema.manifests.c.id)).scalar_one())
                )
        newest = _entries(cloud, limit=1)
        response = cloud.api.request(method, path, **request)
        assert response.status_code in (200, 201), (route, response.text)
        logged = [e for e in _entries(cloud, limit=5) if not newest or e["id"] > newest[0]["id"]]
        assert logged, f"{method} {route} wrote no audit entry: call audit.record in its unit of work"
        assert all(
            (e["actor"], e["actor_name"], e["role"]) == (tests_actor, "tests", "admin") for e in logged
        )
