"""Console sign-in over real HTTP: argon2 password + TOTP code for a session token that acts as its user."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from cloud import schema
from cloud.access import Role
from cloud.cli import main
from cloud.store import CloudStore, utcnow
from cloud.users import create_user
from dockside.errors import InputError
from tests.cloud.conftest import RunningCloud

PASSWORD = "correct horse battery staple"


def _anonymous(cloud: RunningCloud) -> httpx.Client:
    return httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30)


def _sign_in(client: httpx.Client, email: str, password: str, code: str) -> httpx.Response:
    return client.post("/api/v1/session", json={"email": email, "password": password, "totp": code})


def test_sign_in_gives_a_session_that_acts_with_the_users_role_and_scope(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    made = create_user(
        cloud.store,
        email="Maria@Example.com",
        name="Maria",
        password=PASSWORD,
        role=Role.VIEWER,
        warehouses=["WH2"],
    )
    assert made.provisioning_uri.startswith("otpauth://totp/Dockside:maria%40example.com")
    with _anonymous(cloud) as client:
        response = _sign_in(client, "maria@example.com", PASSWORD, pyotp.TOTP(made.totp_secret).now())
        assert response.status_code == 201, response.text
        session = response.json()
        assert session["token"].startswith("dss_")
        assert (session["role"], session["warehouses"], session["name"]) == ("viewer", ["WH2"], "Maria")
        headers = {"Authorization": f"Bearer {session['token']}"}
        assert client.get("/api/v1/me", headers=headers).json() == {
            "role": "viewer",
            "tenant": "default",
            "warehouses": ["WH2"],
            "name": "maria@example.com",
        }
        assert [
            w["code"] for w in client.get("/api/v1/warehouses", headers=headers).json()["warehouses"]
        ] == ["WH2"]
        refused = client.post("/api/v1/warehouses", json={"code": "WH3", "name": "x"}, headers=headers)
        assert refused.status_code == 403
        # The session token is stored hashed only.
        with cloud.store.read() as conn:
            stored = conn.execute(select(schema.user_sessions.c.token_hash)).scalars().all()
            password_hash = conn.execute(select(schema.users.c.password_hash)).scalar_one()
        assert session["token"] not in stored
        assert password_hash.startswith("$argon2")
        # Sign-out ends it at once.
        assert client.delete("/api/v1/session", headers=headers).status_code == 204
        gone = client.get("/api/v1/me", headers=headers)
        assert gone.status_code == 401
        assert "sign in again" in gone.json()["error"]["message"]


def test_a_wrong_password_code_or_email_is_refused_alike(cloud: RunningCloud) -> None:
    made = create_user(cloud.store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    totp = pyotp.TOTP(made.totp_secret)
    stale = totp.at(utcnow() - timedelta(minutes=5))
    with _anonymous(cloud) as client:
        answers = [
            _sign_in(client, "ops@example.com", "wrong password!", totp.now()),
            _sign_in(client, "ops@example.com", PASSWORD, stale if stale != totp.now() else "000000"),
            _sign_in(client, "nobody@example.com", PASSWORD, totp.now()),
        ]
        for answer in answers:
            assert answer.status_code == 401
            assert answer.json()["error"]["message"].startswith("the email, password or code is wrong")
        assert client.post("/api/v1/session", json={"email": "ops@example.com"}).status_code == 422
        # An API token is not a session: it cannot be signed out.
        refused = client.delete("/api/v1/session", headers={"Authorization": f"Bearer {cloud.token}"})
        assert refused.status_code == 401


def test_an_expired_session_is_refused(cloud: RunningCloud) -> None:
    made = create_user(
        cloud.store, email="late@example.com", name="Late", password=PASSWORD, role=Role.EDITOR
    )
    with _anonymous(cloud) as client:
        token = _sign_in(client, "late@example.com", PASSWORD, pyotp.TOTP(made.totp_secret).now()).json()[
            "token"
        ]
        with cloud.store.write() as tx:
            tx.conn.execute(update(schema.user_sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize(
    ("email", "password", "needle"),
    [("not-an-email", PASSWORD, "look like name@example.com"), ("a@example.com", "short", "12 to 1,000")],
)
def test_bad_users_are_refused(store: CloudStore, email: str, password: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        create_user(store, email=email, name="X", password=password, role=Role.VIEWER)


def test_create_user_command_prints_the_totp_secret_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "create-user",
            "--email",
            "ana@example.com",
            "--name",
            "Ana",
            "--role",
            "editor",
            "--database-url",
            url,
        ],
        env={"DOCKSIDE_USER_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    assert "TOTP secret: " in result.output
    assert "otpauth://totp/" in result.output
    again = runner.invoke(
        main,
        ["create-user", "--email", "ana@example.com", "--name", "Ana", "--database-url", url],
        env={"DOCKSIDE_USER_PASSWORD": PASSWORD},
    )
    assert again.exit_code != 0
    assert "already a user ana@example.com" in again.output
