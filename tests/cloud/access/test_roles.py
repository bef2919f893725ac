"""Roles and scope over real HTTP: every role on every endpoint, other tenants and other warehouses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cloud.access.principals import Role, create_api_token, create_tenant, create_token
from cloud.webhooks.targets import ALLOW_PRIVATE_ENV
from tests.cloud.conftest import (
    BACKENDS,
    CLIENT_TLS,
    STATION,
    TEMPLATE,
    RunningCloud,
    fresh_database,
    migrated_store,
    order,
    serving,
)

RULESET = {
    "default": {"carrier": "POST"},
    "rules": [{"when": "weight_g > 20000", "then": {"carrier": "FREIGHT"}}],
}
ALL = frozenset(Role)
STAFF = frozenset({Role.ADMIN, Role.EDITOR, Role.VIEWER})
EDITORS = frozenset({Role.ADMIN, Role.EDITOR})
ADMIN = frozenset({Role.ADMIN})
ORDER_MANAGERS = frozenset({Role.ADMIN, Role.EDITOR, Role.INTEGRATION})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[Role]
    status: int = 200
    body: Any = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/api/v1/me", ALL),
    Endpoint("POST", "/api/v1/warehouses", ADMIN, body={"code": "WH1", "name": "Warehouse WH1"}),
    Endpoint("GET", "/api/v1/warehouses", STAFF),
    Endpoint("GET", "/api/v1/warehouses/WH1", STAFF),
    Endpoint("POST", "/api/v1/warehouses/WH1/stations", EDITORS, body=STATION),
    Endpoint("GET", "/api/v1/warehouses/WH1/stations", STAFF),
    Endpoint("POST", "/api/v1/warehouses/WH1/enrollment-tokens", ADMIN, 201, {"ttl_s": 600}),
    # The badge is refused (422) once past the role check, so every allowed role answers alike.
    Endpoint("POST", "/api/v1/warehouses/WH1/packers", EDITORS, 422, {"name": "Ana", "badge": "B 1"}),
    Endpoint("GET", "/api/v1/warehouses/WH1/packers", STAFF),
    # No packer 999: allowed roles get past the role check to the 404.
    Endpoint("PATCH", "/api/v1/warehouses/WH1/packers/999", EDITORS, 404, {"name": "Bo"}),
    Endpoint("POST", "/api/v1/templates/t1/versions", EDITORS, 201, TEMPLATE),
    Endpoint("GET", "/api/v1/templates/t1/versions", STAFF),
    Endpoint("GET", "/api/v1/templates/t1/versions/1", STAFF),
    Endpoint("POST", "/api/v1/templates/t1/versions/1/publish", EDITORS),
    Endpoint("GET", "/api/v1/templates/t1/versions/1/preview.png", STAFF),
    Endpoint("POST", "/api/v1/templates/t1/rollback", EDITORS, body={"version": 1}),
    Endpoint("GET", "/api/v1/templates/t1/rollout", STAFF, 404),
    Endpoint(
        "POST", "/api/v1/orders", frozenset({Role.ADMIN, Role.INTEGRATION}), body={"orders": [order("R1")]}
    ),
    Endpoint("GET", "/api/v1/orders/R1", ALL),
    Endpoint("GET", "/api/v1/agents", STAFF),
    Endpoint("POST", "/api/v1/rulesets/t1/versions", EDITORS, 201, RULESET),
    Endpoint("GET", "/api/v1/rulesets/t1/versions", STAFF),
    Endpoint("GET", "/api/v1/rulesets/t1/versions/1", STAFF),
    Endpoint("POST", "/api/v1/rulesets/t1/versions/1/simulate", EDITORS, body={"last": 10}),
    Endpoint("POST", "/api/v1/rulesets/t1/versions/1/publish", EDITORS),
    Endpoint("POST", "/api/v1/orders/R1/state", ORDER_MANAGERS, body={"state": "released"}),
    Endpoint("POST", "/api/v1/orders/R1/cancel", ORDER_MANAGERS, body={"reason": "customer called"}),
    Endpoint("GET", "/api/v1/orders/R1/timeline", ALL),
    Endpoint(
        "POST",
        "/api/v1/waves",
        ORDER_MANAGERS,
        201,
        {"warehouse": "WH1", "station": "S1", "order_refs": ["R1"]},
    ),
    Endpoint("GET", "/api/v1/waves/1", ALL, 404),
    Endpoint("POST", "/api/v1/orders/R1/erase-personal-data", ADMIN),
    Endpoint("GET", "/api/v1/exceptions", ALL),
    # No exception 1 exists: allowed roles get past the role check to the 404.
    Endpoint("GET", "/api/v1/exceptions/1", ALL, 404),
    Endpoint("POST", "/api/v1/exceptions/1/assign", EDITORS, 404, {"assignee": "maria"}),
    Endpoint("POST", "/api/v1/exceptions/1/acknowledge", EDITORS, 404),
    Endpoint("POST", "/api/v1/exceptions/1/resolve", EDITORS, 404, {"comment": "done"}),
    Endpoint("GET", "/api/v1/audit", ADMIN),
    Endpoint("GET", "/api/v1/reports/packing", STAFF),
    Endpoint("GET", "/api/v1/export/orders", ALL),
    Endpoint(
        "POST",
        "/api/v1/webhooks",
        ADMIN,
        201,
        {"url": "http://127.0.0.1:9/hook", "events": ["exception.opened"]},
    ),
    Endpoint("GET", "/api/v1/webhooks", ADMIN),
    # No webhook 1 exists: the admin gets past the role check to the 404.
    Endpoint("DELETE", "/api/v1/webhooks/1", ADMIN, 404),
    Endpoint("GET", "/api/v1/webhooks/1/deliveries", ADMIN, 404),
    Endpoint("POST", "/api/v1/webhooks/1/replay", ADMIN, 404, {"since": "2026-01-01T00:00:00Z"}),
    # No such agent: an admin gets past the role check to the 404, the others stop at 403.
    Endpoint("POST", "/api/v1/agents/no-such-agent/revoke", ADMIN, 404),
    Endpoint("GET", "/api/v1/tokens", ADMIN),
    Endpoint("POST", "/api/v1/tokens", ADMIN, 201, {"name": "oms", "role": "integration"}),
    # No token 999 or user 999: the admin gets past the role check to the 404.
    Endpoint("POST", "/api/v1/tokens/999/revoke", ADMIN, 404),
    Endpoint("GET", "/api/v1/users", ADMIN),
    Endpoint(
        "POST",
        "/api/v1/users",
        ADMIN,
        201,
        {"email": "ops@example.com", "name": "Ops", "password": "correct horse battery staple"},
    ),
    Endpoint("POST", "/api/v1/users/999/disable", ADMIN, 404),
    Endpoint("POST", "/api/v1/users/999/enable", ADMIN, 404),
    Endpoint("POST", "/api/v1/users/999/reset-password", ADMIN, 404),
    Endpoint("POST", "/api/v1/users/999/reset-totp", ADMIN, 404),
    Endpoint("GET", "/api/v1/alerts/thresholds", ADMIN),
    Endpoint("PUT", "/api/v1/alerts/thresholds/reprint_burst", ADMIN, body={"count": 20, "window_s": 60}),
    # Shipping. A carrier serves the whole tenant: editors of rulesets set carriers up. The
    # carrier body is refused (422) once past the role check, so every allowed role answers
    # alike; nothing to close for carrier C1 is 409 manifest_empty.
    Endpoint(
        "POST", "/api/v1/carriers", EDITORS, 422, {"code": "C1", "name": "C", "tracking": {"kind": "?"}}
    ),
    Endpoint("GET", "/api/v1/carriers", STAFF),
    Endpoint("GET", "/api/v1/carriers/C1", STAFF, 404),
    Endpoint("POST", "/api/v1/carriers/C1/ranges", EDITORS, 404, {"first": 1, "last": 10}),
    Endpoint("GET", "/api/v1/carriers/C1/ranges", STAFF, 404),
    Endpoint("POST", "/api/v1/warehouses/WH1/manifests", ORDER_MANAGERS, 409, {"carrier": "C1"}),
    Endpoint("GET", "/api/v1/manifests/1", ALL, 404),
    Endpoint("GET", "/api/v1/manifests/1.pdf", ALL, 404),
    Endpoint("GET", "/api/v1/manifests/1.csv", ALL, 404),
    Endpoint("POST", "/api/v1/manifests/1/handover", ORDER_MANAGERS, 404),
    Endpoint(
        "POST",
        "/api/v1/orders/R1/parcels/1/label",
        frozenset({Role.ADMIN, Role.INTEGRATION}),
        body={"format": "zpl", "data_base64": "XlhBXkZPMTAsMTBeQTBOLDMwLDMwXkZEWF5GU15YWg=="},
    ),
    # R1 has no printed label: allowed roles get past the role check to the 404.
    Endpoint("POST", "/api/v1/orders/R1/parcels/1/void", ORDER_MANAGERS, 404, {"reason": "torn"}),
]


# Routes whose callers are tested elsewhere: agents (their own credential, not an API token) and
# agent releases (admin only, with their own role tests in the releases work) and sign-in
# (anyone; tests/cloud/access/test_sessions.py).
ELSEWHERE = ("/api/v1/agent/", "/api/v1/releases", "/api/v1/session")


def _client(cloud: RunningCloud, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://{cloud.http_address}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=CLIENT_TLS,
    )


def _set_up(cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch) -> RunningCloud:
    """WH1 with a station, template t1 v1, ruleset t1 v1 and order R1 in the default tenant.

    Webhooks may go to loopback here (the matrix subscribes http://127.0.0.1:9/hook).
    """
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    assert cloud.api.post("/api/v1/templates/t1/versions", json=TEMPLATE).status_code == 201
    assert cloud.api.post("/api/v1/rulesets/t1/versions", json=RULESET).status_code == 201
    assert cloud.ingest(order("R1"))["errors"] == []
    return cloud


@contextmanager
def _role_clients(cloud: RunningCloud) -> Iterator[dict[Role, httpx.Client]]:
    made = {
        role: _client(cloud, create_api_token(cloud.store, name=f"{role.value}-token", role=role))
        for role in Role
    }
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


@pytest.fixture
def setup(cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch) -> RunningCloud:
    return _set_up(cloud, monkeypatch)


@pytest.fixture
def clients(setup: RunningCloud) -> Iterator[dict[Role, httpx.Client]]:
    with _role_clients(setup) as made:
        yield made


@pytest.fixture(scope="module", params=BACKENDS)
def reading(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningCloud, dict[Role, httpx.Client]]]:
    """One cloud set up as `setup` sets one up, with a client per role, shared by the endpoints that
    only read: a read changes nothing (each one is checked), so each sees the same cloud."""
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        fresh_database(request.param, tmp_path_factory.mktemp("reads"), request) as url,
        migrated_store(url, request) as store,
        serving(store) as cloud,
        _role_clients(_set_up(cloud, monkeypatch)) as made,
    ):
        yield cloud, made


def _revision(cloud: RunningCloud) -> int:
    revision: int = cloud.api.get("/healthz").json()["revision"]
    return revision


def test_a_refusal_names_the_callers_role_and_the_roles_that_may(clients: dict[Role, httpx.Client]) -> None:
    error = clients[Role.VIEWER].post("/api/v1/templates/t1/versions", json=TEMPLATE).json()["error"]
    assert error == {
        "code": "forbidden",
        "message": "this token's role (viewer) may not create and publish templates: "
        "use a token with role admin, editor",
    }


READS = [endpoint for endpoint in ENDPOINTS if endpoint.method == "GET"]
WRITES = [endpoint for endpoint in ENDPOINTS if endpoint.method != "GET"]


@pytest.mark.parametrize("endpoint", WRITES, ids=str)
def test_each_role_on_each_write(
    setup: RunningCloud, clients: dict[Role, httpx.Client], endpoint: Endpoint
) -> None:
    _each_role_on(setup, clients, endpoint)


@pytest.mark.parametrize("endpoint", READS, ids=str)
def test_each_role_on_each_read(
    reading: tuple[RunningCloud, dict[Role, httpx.Client]], endpoint: Endpoint
) -> None:
    cloud, clients = reading
    before = _revision(cloud)
    _each_role_on(cloud, clients, endpoint)
    # No role's read changed anything agents would see: the next read finds the same cloud.
    assert _revision(cloud) == before


def _each_role_on(cloud: RunningCloud, clients: dict[Role, httpx.Client], endpoint: Endpoint) -> None:
    # Refused roles first, so an allowed write cannot hide a refused one's effect.
    for role in sorted(Role, key=lambda role: role in endpoint.allowed):
        before = _revision(cloud)
        response = clients[role].request(endpoint.method, endpoint.path, json=endpoint.body)
        if role in endpoint.allowed:
            assert response.status_code == endpoint.status, (role, response.text)
            continue
        assert response.status_code == 403, (role, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden", role
        # The message says what to do: which role to use instead.
        assert all(allowed.value in error["message"] for allowed in endpoint.allowed), error["message"]
        # A refused write changed nothing that agents would see.
        assert _revision(cloud) == before, role


def test_every_api_route_is_in_the_matrix(cloud: RunningCloud) -> None:
    spec = cloud.api.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    covered = set()
    for endpoint in ENDPOINTS:
        concrete = endpoint.path
        for path_template in spec["paths"]:
            pattern = path_template.replace("{wh}", "WH1").replace("{name}", "t1").replace("{n}", "1")
            pattern = pattern.replace("{order_ref}", "R1").replace("{agent_id}", "no-such-agent")
            pattern = pattern.replace("{exception_id}", "1").replace("{kind}", "orders")
            pattern = pattern.replace("{webhook_id}", "1").replace("{wave_id}", "1")
            pattern = pattern.replace("{token_id}", "999").replace("{user_id}", "999")
            pattern = pattern.replace("{alert_kind}", "reprint_burst")
            pattern = pattern.replace("{code}", "C1").replace("{manifest_id}", "1").replace("{number}", "1")
            pattern = pattern.replace("{warehouse}", "WH1").replace("{packer_id}", "999")
            if pattern == concrete:
                covered.add((endpoint.method, path_template))
    missing = {
        route for route in routes if route[1].startswith("/api/v1/") and not route[1].startswith(ELSEWHERE)
    }
    assert not missing - covered, f"add these routes to ENDPOINTS: {sorted(missing - covered)}"


def test_me_tells_role_tenant_scope_and_name(setup: RunningCloud) -> None:
    assert setup.api.get("/api/v1/me").json() == {
        "role": "admin",
        "tenant": "default",
        "warehouses": None,
        "name": "tests",
    }
    token = create_api_token(setup.store, name="wh-viewer", role=Role.VIEWER, warehouses=["WH2", "WH1"])
    with _client(setup, token) as scoped:
        assert scoped.get("/api/v1/me").json() == {
            "role": "viewer",
            "tenant": "default",
            "warehouses": ["WH1", "WH2"],
            "name": "wh-viewer",
        }


def _missing(client: httpx.Client, path: str, method: str = "GET", body: Any = None) -> str:
    response = client.request(method, path, json=body)
    assert response.status_code == 404, (path, response.text)
    error = response.json()["error"]
    assert error["code"] == "not_found"
    message: str = error["message"]
    return message


def test_another_tenants_objects_answer_404_like_missing_ones(setup: RunningCloud) -> None:
    create_tenant(setup.store, code="acme", name="Acme")
    token = create_api_token(setup.store, name="acme-admin", role=Role.ADMIN, tenant="acme")
    with _client(setup, token) as acme:
        assert acme.get("/api/v1/me").json()["tenant"] == "acme"
        assert acme.get("/api/v1/warehouses").json() == {"warehouses": []}
        assert acme.get("/api/v1/agents").json() == {"agents": []}
        _missing(acme, "/api/v1/templates/t1/versions")
        # The same 404 as for objects that exist nowhere: nothing reveals the other tenant.
        assert _missing(acme, "/api/v1/warehouses/WH1") == _missing(acme, "/api/v1/warehouses/NOPE").replace(
            "NOPE", "WH1"
        )
        assert _missing(acme, "/api/v1/orders/R1") == _missing(acme, "/api/v1/orders/NOPE").replace(
            "NOPE", "R1"
        )
        _missing(acme, "/api/v1/templates/t1/versions/1")
        _missing(acme, "/api/v1/templates/t1/versions/1/publish", "POST")
        _missing(acme, "/api/v1/rulesets/t1/versions")
        _missing(acme, "/api/v1/rulesets/t1/versions/1/publish", "POST")
        _missing(acme, "/api/v1/rulesets/t1/versions/1/simulate", "POST", {"last": 10})
        _missing(acme, "/api/v1/warehouses/WH1/stations", "POST", STATION)
        _missing(acme, "/api/v1/warehouses/WH1/enrollment-tokens", "POST", {"ttl_s": 60})
        # Writes land in acme's own space and never touch the default tenant's objects.
        answer = acme.post("/api/v1/orders", json={"orders": [order("R1")]}).json()
        assert [error["code"] for error in answer["errors"]] == ["unknown_warehouse"]
        assert acme.post("/api/v1/warehouses", json={"code": "WH1", "name": "Acme WH1"}).status_code == 201
        assert acme.post("/api/v1/orders", json={"orders": [order("R1")]}).json()["errors"] == []
    # The default tenant's WH1 and R1 are unchanged.
    assert setup.api.get("/api/v1/warehouses/WH1").json()["name"] == "Warehouse WH1"
    assert len(setup.api.get("/api/v1/warehouses").json()["warehouses"]) == 1


def test_a_warehouse_scoped_token_sees_only_its_warehouses(setup: RunningCloud) -> None:
    setup.put_warehouse("WH2")
    setup.enroll("WH1")
    assert setup.ingest(order("R2", warehouse="WH2"))["errors"] == []
    token = create_api_token(setup.store, name="wh2-admin", role=Role.ADMIN, warehouses=["WH2"])
    with _client(setup, token) as wh2:
        assert [w["code"] for w in wh2.get("/api/v1/warehouses").json()["warehouses"]] == ["WH2"]
        assert wh2.get("/api/v1/agents").json() == {"agents": []}
        assert wh2.get("/api/v1/orders/R2").status_code == 200
        # Reads of WH1 and its orders: 404, exactly as if they did not exist.
        assert _missing(wh2, "/api/v1/warehouses/WH1") == _missing(wh2, "/api/v1/warehouses/NOPE").replace(
            "NOPE", "WH1"
        )
        _missing(wh2, "/api/v1/warehouses/WH1/stations")
        _missing(wh2, "/api/v1/orders/R1")
        # Writes into WH1: refused without touching it.
        _missing(wh2, "/api/v1/warehouses/WH1/stations", "POST", {**STATION, "code": "S9"})
        _missing(wh2, "/api/v1/warehouses/WH1/enrollment-tokens", "POST", {"ttl_s": 60})
        renamed = wh2.post("/api/v1/warehouses", json={"code": "WH1", "name": "taken over"})
        assert renamed.status_code == 403
        assert "limited to warehouses WH2" in renamed.json()["error"]["message"]
        answer = wh2.post(
            "/api/v1/orders",
            json={
                "orders": [
                    order("R3", warehouse="WH1"),
                    order("R1", warehouse="WH2"),
                    order("R4", warehouse="WH2"),
                ]
            },
        ).json()
        assert answer["accepted"] == ["R4"]
        assert [(e["order_ref"], e["code"]) for e in answer["errors"]] == [
            ("R3", "unknown_warehouse"),
            ("R1", "order_ref_taken"),
        ]
    stations = setup.api.get("/api/v1/warehouses/WH1/stations").json()["stations"]
    assert [s["code"] for s in stations] == ["S1"]
    assert setup.api.get("/api/v1/warehouses/WH1").json()["name"] == "Warehouse WH1"
    assert setup.api.get("/api/v1/orders/R1").json()["warehouse"] == "WH1"
    assert setup.api.get("/api/v1/orders/R3").status_code == 404
    assert len(setup.api.get("/api/v1/agents").json()["agents"]) == 1


def test_a_warehouse_scoped_admin_revokes_only_its_own_agents_and_every_revoke_is_audited(
    setup: RunningCloud,
) -> None:
    setup.put_warehouse("WH2")
    wh1_agent, wh2_agent = setup.enroll("WH1"), setup.enroll("WH2")
    wh1_made = create_token(setup.store, name="wh1-admin", role=Role.ADMIN, warehouses=["WH1"])
    with _client(setup, wh1_made.secret) as wh1:
        # WH2's agent is as missing to WH1's admin as an agent that never existed.
        message = _missing(wh1, f"/api/v1/agents/{wh2_agent.agent_id}/revoke", "POST")
        assert message == _missing(wh1, "/api/v1/agents/agt_nobody/revoke", "POST").replace(
            "agt_nobody", wh2_agent.agent_id
        )
        done = wh1.post(f"/api/v1/agents/{wh1_agent.agent_id}/revoke")
        assert done.status_code == 200, done.text
        again = wh1.post(f"/api/v1/agents/{wh1_agent.agent_id}/revoke")
        assert again.json()["revoked_at"] == done.json()["revoked_at"]
    fleet = {agent["id"]: agent for agent in setup.api.get("/api/v1/agents").json()["agents"]}
    assert fleet[wh2_agent.agent_id]["revoked_at"] is None
    assert fleet[wh1_agent.agent_id]["revoked_at"] == done.json()["revoked_at"]

    entries = setup.api.get("/api/v1/audit", params={"object_kind": "agent"}).json()["entries"]
    # The actor is the token's unique id, its name beside it.
    assert [(e["action"], e["object_key"], e["actor"], e["actor_name"]) for e in entries] == [
        ("revoke_agent", wh1_agent.agent_id, f"token:{wh1_made.id}", "wh1-admin"),
        ("revoke_agent", wh1_agent.agent_id, f"token:{wh1_made.id}", "wh1-admin"),
    ]
    second, first = entries
    assert first["before"] == {"id": wh1_agent.agent_id, "warehouse": "WH1", "revoked_at": None}
    assert first["after"] == {**first["before"], "revoked_at": done.json()["revoked_at"]}
    assert second["before"] == second["after"] == first["after"]
    assert first["role"] == "admin"


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER, Role.INTEGRATION])
def test_only_admins_revoke_agents(setup: RunningCloud, role: Role) -> None:
    agent = setup.enroll("WH1")
    with _client(setup, create_api_token(setup.store, name=f"{role.value}-x", role=role)) as client:
        refused = client.post(f"/api/v1/agents/{agent.agent_id}/revoke")
    assert refused.status_code == 403
    assert "admin token" in refused.json()["error"]["message"]
    assert setup.api.get("/api/v1/audit", params={"object_kind": "agent"}).json()["entries"] == []


def _two_warehouses_with_history(setup: RunningCloud) -> None:
    """WH2 with a station and a cancelled order R2, next to setup's WH1, S1 and R1 (R1 cancelled too)."""
    setup.put_warehouse("WH2")
    assert setup.api.post("/api/v1/warehouses/WH2/stations", json=STATION).status_code == 201
    assert setup.ingest(order("R2", warehouse="WH2"))["errors"] == []
    for ref in ("R1", "R2"):
        assert setup.api.post(f"/api/v1/orders/{ref}/cancel", json={"reason": "test"}).status_code == 200


def test_a_warehouse_scoped_admin_reads_only_its_warehouses_audit_entries(setup: RunningCloud) -> None:
    _two_warehouses_with_history(setup)
    everything = setup.api.get("/api/v1/audit").json()["entries"]
    assert {(e["object_kind"], e["warehouse"]) for e in everything} >= {
        ("warehouse", "WH1"),
        ("station", "WH1"),
        ("order", "WH1"),
        ("warehouse", "WH2"),
        ("station", "WH2"),
        ("order", "WH2"),
        ("template", None),
        ("ruleset", None),
    }
    token = create_api_token(setup.store, name="wh2-admin", role=Role.ADMIN, warehouses=["WH2"])
    with _client(setup, token) as wh2:
        entries = wh2.get("/api/v1/audit").json()["entries"]
        assert [(e["action"], e["object_key"]) for e in entries] == [
            ("change_order_state", "R2"),
            ("put_station", "WH2/S1"),
            ("put_warehouse", "WH2"),
        ]
        assert {e["warehouse"] for e in entries} == {"WH2"}
        # Asking for WH1's objects by name finds nothing, as if they had no history.
        assert wh2.get("/api/v1/audit", params={"object_key": "R1"}).json() == {"entries": []}
        assert wh2.get("/api/v1/audit", params={"object_kind": "template"}).json() == {"entries": []}
        exported = wh2.get("/api/v1/export/audit", params={"format": "jsonl"})
        assert exported.status_code == 200
        lines = [json.loads(line) for line in exported.text.splitlines()]
        assert [(e["action"], e["object_key"]) for e in lines] == [
            ("put_warehouse", "WH2"),
            ("put_station", "WH2/S1"),
            ("change_order_state", "R2"),
        ]
        csv_export = wh2.get("/api/v1/export/audit", params={"format": "csv"}).text
        assert "WH2/S1" in csv_export
        assert "WH1" not in csv_export
        assert "R1" not in csv_export
    # The tenant-wide admin still reads everything.
    whole = [json.loads(line) for line in setup.api.get("/api/v1/export/audit").text.splitlines()]
    assert len(whole) == len(everything)


def test_a_warehouse_scoped_admin_may_not_manage_webhooks(setup: RunningCloud) -> None:
    made = setup.api.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["order.state_changed"]}
    )
    assert made.status_code == 201, made.text
    hook = made.json()["id"]
    token = create_api_token(setup.store, name="wh2-admin", role=Role.ADMIN, warehouses=["WH2"])
    calls = [
        ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/wh2", "events": ["order.state_changed"]}),
        ("GET", "/api/v1/webhooks", None),
        ("DELETE", f"/api/v1/webhooks/{hook}", None),
        ("GET", f"/api/v1/webhooks/{hook}/deliveries", None),
        ("POST", f"/api/v1/webhooks/{hook}/replay", {"since": "2026-01-01T00:00:00Z"}),
    ]
    with _client(setup, token) as wh2:
        for method, path, body in calls:
            refused = wh2.request(method, path, json=body)
            assert refused.status_code == 403, (path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "forbidden"
            assert "limited to warehouses WH2" in error["message"]
            assert "admin token for the whole tenant" in error["message"]
    # Nothing changed: still one active subscription, and no webhook write in the audit log.
    hooks = setup.api.get("/api/v1/webhooks").json()["webhooks"]
    assert [(h["id"], h["active"]) for h in hooks] == [(hook, True)]
    logged = setup.api.get("/api/v1/audit", params={"object_kind": "webhook"}).json()["entries"]
    assert [e["action"] for e in logged] == ["create_webhook"]


def test_a_warehouse_scoped_token_releases_and_reads_only_its_own_waves(setup: RunningCloud) -> None:
    _two_warehouses_with_history(setup)
    assert setup.ingest(order("R3"), order("R4", warehouse="WH2"))["errors"] == []
    wave = {"warehouse": "WH1", "station": "S1", "order_refs": ["R3"]}
    wh1_wave = setup.api.post("/api/v1/waves", json=wave)
    assert wh1_wave.status_code == 201, wh1_wave.text
    wave_id = wh1_wave.json()["id"]
    token = create_api_token(setup.store, name="wh2-editor", role=Role.EDITOR, warehouses=["WH2"])
    with _client(setup, token) as wh2:
        # WH1 answers as if it did not exist, for a new wave and for WH1's wave.
        into_nowhere = {**wave, "warehouse": "NOPE"}
        assert _missing(wh2, "/api/v1/waves", "POST", wave) == _missing(
            wh2, "/api/v1/waves", "POST", into_nowhere
        ).replace("NOPE", "WH1")
        assert _missing(wh2, f"/api/v1/waves/{wave_id}") == _missing(wh2, "/api/v1/waves/999999").replace(
            "999999", str(wave_id)
        )
        # A WH2 wave cannot pull in WH1's order: it is reported like an order that does not exist.
        mixed = wh2.post(
            "/api/v1/waves", json={"warehouse": "WH2", "station": "S1", "order_refs": ["R4", "R3"]}
        )
        assert mixed.status_code == 201, mixed.text
        assert [(e["order_ref"], e["code"]) for e in mixed.json()["errors"]] == [("R3", "not_found")]
        own = wh2.get(f"/api/v1/waves/{mixed.json()['id']}")
        assert own.status_code == 200
        assert [o["order_ref"] for o in own.json()["orders"]] == ["R4"]
    # WH1's order did not move, and WH1's wave still has only R3.
    assert setup.api.get("/api/v1/orders/R3").json()["state"] == "released"
    assert [o["order_ref"] for o in setup.api.get(f"/api/v1/waves/{wave_id}").json()["orders"]] == ["R3"]
    # Another tenant's admin: the wave is as missing as one that never existed.
    create_tenant(setup.store, code="acme", name="Acme")
    with _client(setup, create_api_token(setup.store, name="acme", role=Role.ADMIN, tenant="acme")) as acme:
        assert _missing(acme, f"/api/v1/waves/{wave_id}") == _missing(acme, "/api/v1/waves/999999").replace(
            "999999", str(wave_id)
        )
        _missing(acme, "/api/v1/waves", "POST", {"warehouse": "WH1", "station": "S1", "order_refs": ["R1"]})
