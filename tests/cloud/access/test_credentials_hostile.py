"""Credentials have a life cycle, tried as a hostile caller would, over the real HTTP API.

Tokens: a revoked token is refused at once by a second replica over the same database, an
expired one too, a scoped admin cannot mint a broader token, hostile bodies are refused. Users:
a disabled user's session ends at once, resets replace the credential. Every change is audited
with a unique actor id. A re-ingested order's new ship-to is on its timeline and in the audit.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from cloud.access.principals import Role, create_token
from cloud.commands.cli import main
from cloud.records import audit
from cloud.server import run_cloud
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from tests.cloud.conftest import CLIENT_TLS, RunningCloud, order

PASSWORD = "correct horse battery staple"


def _client(cloud: RunningCloud, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://{cloud.http_address}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=CLIENT_TLS,
    )


def _audit(cloud: RunningCloud, **params: Any) -> list[dict[str, Any]]:
    response = cloud.api.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def _me_actor(cloud: RunningCloud) -> str:
    (token,) = [t for t in cloud.api.get("/api/v1/tokens").json()["tokens"] if t["name"] == "tests"]
    return f"token:{token['id']}"


@pytest.fixture
def second_replica(database_url: str, cloud: RunningCloud) -> Iterator[str]:
    """Another cloud over the same database (its own store, process state and HTTP port)."""
    store = CloudStore.open(database_url)
    ready: queue.Queue[Any] = queue.Queue()
    control: dict[str, Any] = {}

    async def run() -> None:
        control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await run_cloud(
            store, http="127.0.0.1:0", grpc="127.0.0.1:0", stop=control["stop"], on_ready=ready.put
        )

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    try:
        yield f"http://{ready.get(timeout=30)['http']}"
    finally:
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=30)
        store.close()
        assert not thread.is_alive()


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_revoked_on_one_replica_is_refused_at_once_by_the_other(
    cloud: RunningCloud, second_replica: str
) -> None:
    made = cloud.api.post("/api/v1/tokens", json={"name": "oms", "role": "integration"})
    assert made.status_code == 201, made.text
    secret, token_id = made.json()["token"], made.json()["id"]
    other = httpx.Client(base_url=second_replica, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    with other:
        assert other.get("/api/v1/me").status_code == 200  # the second replica knows it
        revoked = cloud.api.post(f"/api/v1/tokens/{token_id}/revoke")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked"
        refused = other.get("/api/v1/me")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthenticated"
        assert other.get("/api/v1/orders/X").status_code == 401
    again = cloud.api.post(f"/api/v1/tokens/{token_id}/revoke")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "token_revoked"


def test_an_expired_token_is_refused(cloud: RunningCloud) -> None:
    made = create_token(cloud.store, name="temp", role=Role.VIEWER, expires_at=utcnow() + timedelta(hours=1))
    with _client(cloud, made.secret) as client:
        assert client.get("/api/v1/me").status_code == 200
        # An hour passes: the stored expiry is what every replica reads on every call.
        with cloud.store.write() as tx:
            tx.conn.execute(
                update(schema.api_tokens)
                .where(schema.api_tokens.c.id == made.id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        refused = client.get("/api/v1/me")
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    (listed,) = [t for t in cloud.api.get("/api/v1/tokens").json()["tokens"] if t["id"] == made.id]
    assert listed["state"] == "expired"


def test_a_new_token_is_shown_once_listed_without_secret_and_remembers_its_last_use(
    cloud: RunningCloud,
) -> None:
    made = cloud.api.post("/api/v1/tokens", json={"name": "oms", "role": "viewer", "expires_in": 3600})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("dsk_")
    assert body["expires_at"] is not None
    assert body["last_used_at"] is None
    assert body["created_by"] == _me_actor(cloud)
    with _client(cloud, body["token"]) as client:
        assert client.get("/api/v1/me").json()["name"] == "oms"
    listing = cloud.api.get("/api/v1/tokens").json()["tokens"]
    assert body["token"] not in json.dumps(listing)
    (listed,) = [t for t in listing if t["id"] == body["id"]]
    assert listed["last_used_at"] is not None
    assert listed["state"] == "active"


def test_a_scoped_admin_cannot_mint_a_broader_token_or_touch_others(cloud: RunningCloud) -> None:
    for code in ("WH1", "WH2"):
        cloud.put_warehouse(code)
    wh1 = create_token(cloud.store, name="wh1-admin", role=Role.ADMIN, warehouses=["WH1"])
    tenant_wide = create_token(cloud.store, name="oms", role=Role.INTEGRATION)
    with _client(cloud, wh1.secret) as client:
        for body in (
            {"name": "wide", "role": "admin"},  # the whole tenant
            {"name": "other", "role": "viewer", "warehouses": ["WH2"]},
            {"name": "both", "role": "viewer", "warehouses": ["WH1", "WH2"]},
        ):
            refused = client.post("/api/v1/tokens", json=body)
            assert refused.status_code == 403, (body, refused.text)
            assert "WH1" in refused.json()["error"]["message"]
        inside = client.post(
            "/api/v1/tokens", json={"name": "wh1-viewer", "role": "viewer", "warehouses": ["WH1"]}
        )
        assert inside.status_code == 201, inside.text
        # Tokens outside its scope are as missing as tokens that never existed.
        assert [t["name"] for t in client.get("/api/v1/tokens").json()["tokens"]] == [
            "wh1-viewer",
            "wh1-admin",
        ]
        assert client.post(f"/api/v1/tokens/{tenant_wide.id}/revoke").status_code == 404
    with _client(cloud, inside.json()["token"]) as minted:
        assert minted.get("/api/v1/me").json()["warehouses"] == ["WH1"]
    with _client(cloud, tenant_wide.secret) as oms:
        assert oms.get("/api/v1/orders/X").status_code == 404  # still works: never revoked


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "role": "admin"},
        {"name": "x" * 101, "role": "admin"},
        {"name": "bad\nname", "role": "admin"},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "admin", "tenant": "other"},
        {"name": "x", "role": "admin", "expires_in": -5},
        {"name": "x", "role": "admin", "expires_in": 10**12},
        {"name": "x", "role": "admin", "expires_in": 600, "expires_at": "2030-01-01T00:00:00Z"},
        {"name": "x", "role": "admin", "expires_at": "2000-01-01T00:00:00Z"},
        {"name": "x", "role": "admin", "expires_at": "2030-01-01T00:00:00"},  # no time zone
        {"name": "x", "role": "admin", "warehouses": []},
        {"name": "x", "role": "admin", "warehouses": ["WH1"] * 101},
        {"name": "x", "role": "admin", "warehouses": ["W H1"]},
        {"name": {"$gt": ""}, "role": "admin"},
        [],
        "token please",
    ],
    ids=str,
)
def test_hostile_token_bodies_are_refused_and_make_nothing(cloud: RunningCloud, body: Any) -> None:
    before = cloud.api.get("/api/v1/tokens").json()["tokens"]
    response = cloud.api.post("/api/v1/tokens", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"]
    assert cloud.api.get("/api/v1/tokens").json()["tokens"] == before


def test_oversized_and_broken_bodies_on_the_new_endpoints(cloud: RunningCloud) -> None:
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'", "role": "admin"}'
    headers = {"Content-Type": "application/json"}
    for path in ("/api/v1/tokens", "/api/v1/users", "/api/v1/users/1/reset-password"):
        too_big = cloud.api.post(path, content=huge, headers=headers)
        assert too_big.status_code == 413, (path, too_big.text)
        broken = cloud.api.post(path, content=b'{"name": ', headers=headers)
        assert broken.status_code in (400, 422), (path, broken.text)
    for path in (
        "/api/v1/tokens/-1/revoke",
        "/api/v1/tokens/99999999999999999999999/revoke",
        "/api/v1/tokens/x/revoke",
    ):
        assert cloud.api.post(path).status_code == 422, path
    bad_threshold = cloud.api.put(
        "/api/v1/alerts/thresholds/reprint_burst", json={"count": -1, "window_s": 0}
    )
    assert bad_threshold.status_code == 422
    assert (
        cloud.api.put("/api/v1/alerts/thresholds/nothing", json={"count": 1, "window_s": 1}).status_code
        == 422
    )


# -- users -------------------------------------------------------------------------------------


def _sign_in(cloud: RunningCloud, email: str, password: str, secret: str) -> httpx.Response:
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30, verify=CLIENT_TLS) as client:
        return client.post(
            "/api/v1/session", json={"email": email, "password": password, "totp": pyotp.TOTP(secret).now()}
        )


def _new_user(cloud: RunningCloud) -> dict[str, Any]:
    made = cloud.api.post(
        "/api/v1/users",
        json={"email": "ops@example.com", "name": "Ops", "password": PASSWORD, "role": "editor"},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def test_a_disabled_user_is_signed_out_at_once_and_cannot_sign_in(cloud: RunningCloud) -> None:
    user = _new_user(cloud)
    session = _sign_in(cloud, "ops@example.com", PASSWORD, user["totp_secret"])
    assert session.status_code == 201, session.text
    with _client(cloud, session.json()["token"]) as person:
        assert person.get("/api/v1/me").status_code == 200
        disabled = cloud.api.post(f"/api/v1/users/{user['id']}/disable")
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["active"] is False
        assert person.get("/api/v1/me").status_code == 401
    # The right password and a fresh code do not help a disabled user.
    refused = _sign_in(cloud, "ops@example.com", PASSWORD, user["totp_secret"])
    assert refused.status_code == 401
    enabled = cloud.api.post(f"/api/v1/users/{user['id']}/enable")
    assert enabled.json()["active"] is True


def test_resetting_a_password_or_totp_replaces_it_and_ends_sessions(cloud: RunningCloud) -> None:
    user = _new_user(cloud)
    session = _sign_in(cloud, "ops@example.com", PASSWORD, user["totp_secret"]).json()["token"]
    reset = cloud.api.post(f"/api/v1/users/{user['id']}/reset-password")
    assert reset.status_code == 200, reset.text
    new_password = reset.json()["password"]
    assert len(new_password) >= 12
    with _client(cloud, session) as person:
        assert person.get("/api/v1/me").status_code == 401
    totp = cloud.api.post(f"/api/v1/users/{user['id']}/reset-totp")
    assert totp.status_code == 200, totp.text
    new_secret = totp.json()["totp_secret"]
    assert new_secret != user["totp_secret"]
    assert _sign_in(cloud, "ops@example.com", PASSWORD, new_secret).status_code == 401  # old password
    assert (
        _sign_in(cloud, "ops@example.com", new_password, user["totp_secret"]).status_code == 401
    )  # old TOTP
    assert _sign_in(cloud, "ops@example.com", new_password, new_secret).status_code == 201
    # Neither the new password nor the TOTP secret is in the audit log.
    logged = json.dumps(_audit(cloud, object_kind="user"))
    assert new_password not in logged
    assert new_secret not in logged
    assert user["totp_secret"] not in logged


def test_every_credential_change_is_audited_with_a_unique_actor(cloud: RunningCloud) -> None:
    me = _me_actor(cloud)
    user = _new_user(cloud)
    session = _sign_in(cloud, "ops@example.com", PASSWORD, user["totp_secret"]).json()["token"]
    # The user, an editor, cannot manage tokens; an admin user can, as user:<id>.
    with _client(cloud, session) as person:
        assert person.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}).status_code == 403
    admin = cloud.api.post(
        "/api/v1/users",
        json={"email": "boss@example.com", "name": "Boss", "password": PASSWORD, "role": "admin"},
    ).json()
    boss_session = _sign_in(cloud, "boss@example.com", PASSWORD, admin["totp_secret"]).json()["token"]
    with _client(cloud, boss_session) as boss:
        token = boss.post("/api/v1/tokens", json={"name": "tests", "role": "viewer"}).json()
        assert boss.post(f"/api/v1/tokens/{token['id']}/revoke").status_code == 200
    cloud.api.post(f"/api/v1/users/{user['id']}/disable")
    cloud.api.post(f"/api/v1/users/{user['id']}/enable")

    entries = [e for e in reversed(_audit(cloud)) if e["object_kind"] in ("token", "user")]
    assert [(e["action"], e["actor"], e["actor_name"]) for e in entries] == [
        ("create_user", me, "tests"),
        ("create_user", me, "tests"),
        ("create_token", f"user:{admin['id']}", "boss@example.com"),
        ("revoke_token", f"user:{admin['id']}", "boss@example.com"),
        ("disable_user", me, "tests"),
        ("enable_user", me, "tests"),
    ]
    # A token named like the fixture's is still another actor.
    assert f"token:{token['id']}" != me
    assert entries[3]["before"]["revoked_at"] is None
    assert entries[3]["after"]["revoked_at"] is not None


def test_the_cli_audits_as_its_os_user(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "maria")
    monkeypatch.setenv("LOGNAME", "maria")
    runner = CliRunner()
    url = ["--database-url", database_url]
    assert runner.invoke(main, ["create-tenant", "--code", "acme", *url]).exit_code == 0
    made = runner.invoke(
        main, ["create-token", "--name", "oms", "--tenant", "acme", "--expires-in", "90d", *url]
    )
    assert made.exit_code == 0, made.output
    token_id = int(made.stderr.split("token id ")[1].split()[0])
    user = runner.invoke(
        main,
        ["create-user", "--email", "a@example.com", "--name", "A", "--tenant", "acme", *url],
        env={"DOCKSIDE_USER_PASSWORD": PASSWORD},
    )
    assert user.exit_code == 0, user.output
    assert runner.invoke(main, ["revoke-token", str(token_id), "--tenant", "acme", *url]).exit_code == 0
    again = runner.invoke(main, ["revoke-token", str(token_id), "--tenant", "acme", *url])
    assert again.exit_code != 0
    assert "revoked" in again.output
    assert runner.invoke(main, ["disable-user", "a@example.com", *url]).exit_code == 0
    reset = runner.invoke(main, ["reset-password", "a@example.com", *url])
    assert reset.exit_code == 0
    assert "new password: " in reset.output
    bad = runner.invoke(main, ["create-token", "--name", "x", "--expires-in", "soon", *url])
    assert bad.exit_code == 2
    assert "90d" in bad.output

    store = CloudStore.open(database_url)
    try:
        entries = audit.query_audit(store, store.tenant_id("acme"))
    finally:
        store.close()
    assert [(e["action"], e["actor"]) for e in reversed(entries)] == [
        ("create_tenant", "cli:maria"),
        ("create_token", "cli:maria"),
        ("create_user", "cli:maria"),
        ("revoke_token", "cli:maria"),
        ("disable_user", "cli:maria"),
        ("reset_password", "cli:maria"),
    ]
    listing = runner.invoke(main, ["list-tokens", "--tenant", "acme", *url])
    assert f"{token_id}\trevoked\tadmin\toms" in listing.output


# -- re-ingest ---------------------------------------------------------------------------------


def test_a_new_ship_to_through_re_ingest_is_on_the_timeline_and_in_the_audit(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.ingest(order("R1"))["errors"] == []
    assert cloud.ingest(order("R1"))["errors"] == []  # the same again: nothing to record
    moved = {**order("R1")["ship_to"], "street": "1 Elsewhere Lane", "city": "Shelbyville"}
    assert cloud.ingest(order("R1", ship_to=moved, lines=[{"sku": "SKU-2", "qty": 1}]))["errors"] == []

    timeline = cloud.api.get("/api/v1/orders/R1/timeline").json()["timeline"]
    amended = [entry for entry in timeline if entry["kind"] == "order_amended"]
    assert len(amended) == 1
    (entry,) = amended
    assert entry["source"] == {"type": "user", "user": "tests"}
    assert entry["detail"]["actor"] == _me_actor(cloud)
    assert entry["detail"]["before"]["ship_to"]["street"] == "12 Dock Road"
    assert entry["detail"]["after"]["ship_to"]["street"] == "1 Elsewhere Lane"
    assert entry["detail"]["before"]["lines"][0]["sku"] == "SKU-1"
    assert entry["detail"]["after"]["lines"][0]["sku"] == "SKU-2"
    (logged,) = _audit(cloud, object_kind="order", object_key="R1")
    assert logged["action"] == "amend_order"
    assert (logged["actor"], logged["warehouse"]) == (_me_actor(cloud), "WH1")
    assert logged["before"]["ship_to"]["city"] == "Springfield"
    assert logged["after"]["ship_to"]["city"] == "Shelbyville"
    assert set(logged["before"]) == {"ship_to", "lines"}
    # Erasing the order's personal data reaches its amendments too; the facts stay.
    assert cloud.api.post("/api/v1/orders/R1/erase-personal-data").status_code == 200
    kept = json.dumps(cloud.api.get("/api/v1/orders/R1/timeline").json()) + json.dumps(
        _audit(cloud, object_kind="order", object_key="R1")
    )
    for personal in ("12 Dock Road", "1 Elsewhere Lane", "Springfield", "Shelbyville", "Ada Lovelace"):
        assert personal not in kept, personal
    assert "SKU-2" in kept


# -- sign-in under attack, over HTTP (the proxy in front names the client: X-Forwarded-For) -----


def test_the_owner_signs_in_over_http_while_an_attacker_hammers_the_account(cloud: RunningCloud) -> None:
    made = cloud.api.post(
        "/api/v1/users",
        json={"email": "ops@example.com", "name": "Ops", "password": PASSWORD, "role": "admin"},
    ).json()
    totp = pyotp.TOTP(made["totp_secret"])
    home, attacker = "198.51.100.20", "203.0.113.66"

    def attempt(address: str, password: str, code: str) -> httpx.Response:
        with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30, verify=CLIENT_TLS) as client:
            return client.post(
                "/api/v1/session",
                json={"email": "ops@example.com", "password": password, "totp": code},
                headers={"X-Forwarded-For": address},  # the test client is the trusted proxy (127.0.0.1)
            )

    assert attempt(home, PASSWORD, totp.now()).status_code == 201
    started = time.monotonic()
    answers = [attempt(attacker, f"guess number {n}", "000000") for n in range(30)]
    elapsed = timedelta(seconds=time.monotonic() - started)
    statuses = [answer.status_code for answer in answers]
    assert 201 not in statuses
    # The free failures and at most one checked after them; on a slow machine the 30 guesses may
    # outlast the account's delays (README: 1 s after the 5th failure, doubling up to 60 s), and
    # each delay waited out buys one more check.
    checked, waited = 6, timedelta(0)
    while waited + timedelta(seconds=min(2 ** (checked - 5), 60)) <= elapsed:
        waited += timedelta(seconds=min(2 ** (checked - 5), 60))
        checked += 1
    assert statuses.count(401) <= checked
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused
    assert all(1 <= int(answer.headers["Retry-After"]) <= 60 for answer in refused)
    # The owner, from home, with the right password and the next code, gets in at once.
    welcome = attempt(home, PASSWORD, totp.at(utcnow() + timedelta(seconds=30)))
    assert welcome.status_code == 201, welcome.text
    # Spraying other accounts shuts the attacker's own address out, whatever account it tries.
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30, verify=CLIENT_TLS) as client:
        for n in range(20):
            client.post(
                "/api/v1/session",
                json={"email": f"guess{n}@example.com", "password": "x" * 12, "totp": "000000"},
                headers={"X-Forwarded-For": attacker},
            )
    shut = attempt(attacker, PASSWORD, totp.now())
    assert shut.status_code == 429
    assert "from your network address" in shut.json()["error"]["message"]
