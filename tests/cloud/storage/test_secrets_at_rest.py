"""Secrets at rest: tokens, enrollment tokens, agent credentials and sessions are stored hashed only;
TOTP and webhook secrets, which the cloud must read back, are sealed with DOCKSIDE_SECRET_KEY.

Reads the raw rows (plain SQL, every column) on SQLite and PostgreSQL after each kind of secret
was handed out over the real API, and looks for the plaintext anywhere in them.
"""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from cloud.access import users
from cloud.access.credentials import hash_secret
from cloud.access.principals import Role, create_api_token
from cloud.access.users import create_user
from cloud.commands.cli import main
from cloud.storage import schema, sealed_secrets
from cloud.storage.store import CloudStore, utcnow
from cloud.webhooks.targets import ALLOW_PRIVATE_ENV
from tests.cloud.conftest import RunningCloud

PASSWORD = "correct horse battery staple"
HASHED_TABLES = ("api_tokens", "agents", "enrollment_tokens", "user_sessions")


def _raw_cells(cloud: RunningCloud, table: str) -> list[str]:
    with cloud.store.read() as conn:
        rows = conn.execute(text(f"SELECT * FROM {table}")).all()
    return [str(cell) for row in rows for cell in row if cell is not None]


def _handed_out_secrets(cloud: RunningCloud) -> dict[str, str]:
    """One secret of each kind, each obtained the way a user or agent gets it."""
    cloud.put_warehouse("WH1")
    api_token = create_api_token(cloud.store, name="oms", role=Role.INTEGRATION)
    enrollment = cloud.enrollment_token("WH1")
    agent = cloud.enroll("WH1")
    made = create_user(cloud.store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30) as client:
        signed_in = client.post(
            "/api/v1/session",
            json={
                "email": "ops@example.com",
                "password": PASSWORD,
                "totp": pyotp.TOTP(made.totp_secret).now(),
            },
        )
    assert signed_in.status_code == 201, signed_in.text
    return {
        "api token": api_token,
        "enrollment token": enrollment,
        "agent credential": agent.credential,
        "session token": signed_in.json()["token"],
        "password": PASSWORD,
    }


def test_no_column_holds_a_plaintext_token_credential_or_session(cloud: RunningCloud) -> None:
    secrets = _handed_out_secrets(cloud)
    # Every secret works, so the rows read below are the ones that answer for it.
    assert cloud.api.get("/api/v1/me", headers={"Authorization": f"Bearer {secrets['api token']}"}).is_success
    session = {"Authorization": f"Bearer {secrets['session token']}"}
    assert cloud.api.get("/api/v1/me", headers=session).json()["name"] == "ops@example.com"

    stored = {table: _raw_cells(cloud, table) for table in HASHED_TABLES}
    assert hash_secret(secrets["api token"]) in stored["api_tokens"]
    assert hash_secret(secrets["enrollment token"]) in stored["enrollment_tokens"]
    assert hash_secret(secrets["agent credential"]) in stored["agents"]
    assert hash_secret(secrets["session token"]) in stored["user_sessions"]
    # Not in those tables, and nowhere else either (audit log, change log, users, ...): neither
    # the whole secret nor its random part without the visible prefix.
    for table in schema.metadata.sorted_tables:
        cells = stored.get(table.name) or _raw_cells(cloud, table.name)
        for kind, secret in secrets.items():
            for needle in (secret, secret[4:]):
                leaked = [cell for cell in cells if needle in cell]
                assert not leaked, f"the {kind} is stored in plaintext in {table.name}"


# -- secrets the cloud must read back: sealed with DOCKSIDE_SECRET_KEY -------------------------


def _sign_in(store: CloudStore, secret: str, address: str = "192.0.2.1", step: int = 0) -> dict[str, object]:
    at = utcnow() + timedelta(seconds=30 * step)
    return users.sign_in(
        store,
        email="ops@example.com",
        password=PASSWORD,
        code=pyotp.TOTP(secret).at(at),
        address=address,
        now=at,
    )


def test_totp_and_webhook_secrets_are_sealed_in_every_row(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    made = create_user(cloud.store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    hook = cloud.api.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["alert.raised"]}
    )
    assert hook.status_code == 201, hook.text
    reset = cloud.api.post(f"/api/v1/users/{made.id}/reset-totp").json()["totp_secret"]
    assert _sign_in(cloud.store, reset)["token"]
    needles = {
        "TOTP secret": reset,
        "first TOTP secret": made.totp_secret,
        "webhook secret": hook.json()["secret"],
    }
    for table in schema.metadata.sorted_tables:
        cells = _raw_cells(cloud, table.name)
        for kind, secret in needles.items():
            assert not [cell for cell in cells if secret in cell], f"the {kind} is in clear in {table.name}"
    sealed = _raw_cells(cloud, "webhook_subscriptions") + _raw_cells(cloud, "users")
    assert sum(cell.startswith("fernet:") for cell in sealed) == 2


def test_rotation_reseals_with_the_new_key_and_clear_rows_from_before_are_sealed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key, new_key = sealed_secrets.new_key(), sealed_secrets.new_key()
    monkeypatch.setenv(sealed_secrets.KEY_ENV, old_key)
    store = CloudStore.open(database_url)
    try:
        made = create_user(store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
        # A row an older release wrote in clear is still read...
        other = create_user(store, email="old@example.com", name="Old", password=PASSWORD, role=Role.VIEWER)
        with store.write() as tx:
            tx.conn.execute(
                update(schema.users)
                .where(schema.users.c.id == other.id)
                .values(totp_secret=other.totp_secret)
            )
        # ...and the new key in front of the old one opens both kinds of row.
        monkeypatch.setenv(sealed_secrets.KEY_ENV, f"{new_key},{old_key}")
        result = CliRunner().invoke(main, ["rotate-secrets", "--database-url", database_url])
        assert result.exit_code == 0, result.output
        assert "2 secrets sealed" in result.output
        # With the old key gone, every secret still opens: all were sealed with the new one.
        monkeypatch.setenv(sealed_secrets.KEY_ENV, new_key)
        assert _sign_in(store, made.totp_secret)["token"]
        with store.read() as conn:
            stored = dict(conn.execute(select(schema.users.c.email, schema.users.c.totp_secret)).all())
        assert all(value.startswith("fernet:") for value in stored.values())
        assert other.totp_secret not in stored.values()
        # A key that never sealed them opens nothing, and says what to do without echoing a key.
        monkeypatch.setenv(sealed_secrets.KEY_ENV, sealed_secrets.new_key())
        with pytest.raises(sealed_secrets.SecretKeyMismatch) as mismatch:
            sealed_secrets.unseal(stored["ops@example.com"])
        assert new_key not in mismatch.value.message
        assert "rotate-secrets" in mismatch.value.message
    finally:
        store.close()


def test_a_clear_totp_secret_is_sealed_at_its_next_sign_in(store: CloudStore) -> None:
    made = create_user(store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    with store.write() as tx:
        tx.conn.execute(update(schema.users).values(totp_secret=made.totp_secret))
    assert _sign_in(store, made.totp_secret)["token"]
    with store.read() as conn:
        (stored,) = conn.execute(select(schema.users.c.totp_secret)).scalars().all()
    assert stored.startswith("fernet:")
    assert sealed_secrets.unseal(stored) == made.totp_secret


def test_without_a_key_sqlite_keeps_one_beside_the_database_and_postgres_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(sealed_secrets.KEY_ENV)
    with pytest.raises(sealed_secrets.MissingSecretKey):
        sealed_secrets.seal("x")
    refused = CliRunner().invoke(main, ["serve", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert refused.exit_code != 0
    assert "DOCKSIDE_SECRET_KEY is not set" in refused.output
    database = tmp_path / "cloud.db"
    key_file = sealed_secrets.ensure_key(f"sqlite:///{database}")
    assert key_file == tmp_path / "cloud.db.secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = os.environ[sealed_secrets.KEY_ENV]
    # The next start (a new process) finds the same key, so yesterday's secrets still open.
    monkeypatch.delenv(sealed_secrets.KEY_ENV)
    sealed_secrets.ensure_key(f"sqlite:///{database}")
    assert os.environ[sealed_secrets.KEY_ENV] == first
    monkeypatch.setenv(sealed_secrets.KEY_ENV, "not a key")
    with pytest.raises(sealed_secrets.MissingSecretKey) as bad:
        sealed_secrets.ensure_key(f"sqlite:///{database}")
    assert "not a key" not in bad.value.message
