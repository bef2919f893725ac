"""Console sign-in over real HTTP: argon2 password + TOTP code for a session token that acts as its user."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from cloud.access import users
from cloud.access.principals import Role, Unauthenticated
from cloud.access.users import create_user
from cloud.commands.cli import main
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from dockside import typed_secrets
from dockside.errors import InputError
from tests.cloud.conftest import CLIENT_TLS, RunningCloud

PASSWORD = "correct horse battery staple"


def _anonymous(cloud: RunningCloud) -> httpx.Client:
    return httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30, verify=CLIENT_TLS)


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


class _CountingHasher:
    """The real argon2 hasher, counting how often a password is verified."""

    def __init__(self) -> None:
        self.real = typed_secrets.HASHER
        self.verified = 0

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.verified += 1
        return self.real.verify(hashed, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> _CountingHasher:
    counting = _CountingHasher()
    monkeypatch.setattr(typed_secrets, "HASHER", counting)
    return counting


GOOD = {"email": "ops@example.com", "password": PASSWORD, "totp": "123456"}
HOSTILE_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("password of 1,001 characters", {**GOOD, "password": "x" * 1001}, "password"),
    ("password of 500,000 characters", {**GOOD, "password": "x" * 500_000}, "password"),
    ("empty password", {**GOOD, "password": ""}, "password"),
    ("password not a string", {**GOOD, "password": ["x"] * 20}, "password"),
    ("email of 255 characters", {**GOOD, "email": "a" * 243 + "@example.com"}, "email"),
    ("email with a NUL", {**GOOD, "email": "ops\x00@example.com"}, "email"),
    ("email with a newline", {**GOOD, "email": "ops@example.com\nBcc: x@evil.test"}, "email"),
    ("email ending in a newline", {**GOOD, "email": "ops@example.com\n"}, "email"),
    ("email with an escape", {**GOOD, "email": "ops\x1b[2J@example.com"}, "email"),
    ("email with a space", {**GOOD, "email": "ops @example.com"}, "email"),
    ("email without @", {**GOOD, "email": "ops.example.com"}, "email"),
    ("code with a letter", {**GOOD, "totp": "12345a"}, "totp"),
    ("code of 5 digits", {**GOOD, "totp": "12345"}, "totp"),
    ("code of 7 digits", {**GOOD, "totp": "1234567"}, "totp"),
    ("code in full-width digits", {**GOOD, "totp": "\uff11\uff12\uff13\uff14\uff15\uff16"}, "totp"),
    ("code with a newline", {**GOOD, "totp": "12345\n"}, "totp"),
    ("code as a number", {**GOOD, "totp": 123456}, "totp"),
    ("code missing", {"email": GOOD["email"], "password": PASSWORD}, "totp"),
    ("an extra field", {**GOOD, "role": "admin"}, "role"),
]


@pytest.mark.parametrize(
    ("case", "body", "field"), HOSTILE_BODIES, ids=[case for case, _, _ in HOSTILE_BODIES]
)
def test_hostile_sign_in_bodies_are_refused_before_argon2_runs(
    cloud: RunningCloud, hasher: _CountingHasher, case: str, body: dict[str, Any], field: str
) -> None:
    create_user(cloud.store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    with _anonymous(cloud) as client:
        refused = client.post("/api/v1/session", json=body)
        assert refused.status_code == 422, (case, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["message"].startswith(field), error["message"]
        assert "send it again" in error["message"]
        # The probe works: a well-formed wrong sign-in does reach argon2.
        assert hasher.verified == 0
        assert client.post("/api/v1/session", json=GOOD).status_code == 401
        assert hasher.verified == 1


@pytest.mark.parametrize("raw", [b"{", b'{"email": "ops@example.com",', b"\xff\xfe", b"null", b"[]", b""])
def test_a_body_that_is_not_a_json_object_is_refused_before_argon2_runs(
    cloud: RunningCloud, hasher: _CountingHasher, raw: bytes
) -> None:
    with _anonymous(cloud) as client:
        refused = client.post("/api/v1/session", content=raw, headers={"Content-Type": "application/json"})
    # Broken JSON is 400 invalid_json (as everywhere in the API); valid JSON of the wrong shape, 422.
    assert refused.status_code in (400, 422), refused.text
    error = refused.json()["error"]
    assert error["code"] == ("invalid_json" if refused.status_code == 400 else "invalid_input")
    assert error["message"]
    assert hasher.verified == 0


def test_a_totp_code_is_accepted_only_once(cloud: RunningCloud) -> None:
    made = create_user(cloud.store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    totp = pyotp.TOTP(made.totp_secret)
    with _anonymous(cloud) as client:
        code = totp.now()
        first = _sign_in(client, "ops@example.com", PASSWORD, code)
        assert first.status_code == 201, first.text
        replayed = _sign_in(client, "ops@example.com", PASSWORD, code)
        assert replayed.status_code == 401
        assert "works only once" in replayed.json()["error"]["message"]
        # The next step's code (accepted for clock drift) is new, and after it the earlier ones are spent.
        ahead = _sign_in(client, "ops@example.com", PASSWORD, totp.at(utcnow() + timedelta(seconds=30)))
        assert ahead.status_code == 201, ahead.text
        assert _sign_in(client, "ops@example.com", PASSWORD, totp.now()).status_code == 401
    with cloud.store.read() as conn:
        last_step = conn.execute(select(schema.users.c.totp_last_step)).scalar_one()
    assert last_step >= totp.timecode(utcnow())


def test_one_code_sent_twice_at_once_signs_in_only_once(store: CloudStore) -> None:
    made = create_user(store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    now = utcnow()
    code = pyotp.TOTP(made.totp_secret).at(now)

    def attempt(n: int) -> str:
        try:
            users.sign_in(
                store, email="ops@example.com", password=PASSWORD, code=code, address=f"192.0.2.{n}", now=now
            )
        except Unauthenticated:
            return "refused"
        return "signed in"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert sorted(outcomes) == ["refused", "refused", "refused", "signed in"]
