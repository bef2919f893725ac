"""Secrets at rest: tokens, enrollment tokens, agent credentials and sessions are stored hashed only.

Reads the raw rows (plain SQL, every column) on SQLite and PostgreSQL after each kind of secret
was handed out over the real API, and looks for the plaintext anywhere in them.
"""

from __future__ import annotations

import httpx
import pyotp
from sqlalchemy import text

from cloud import schema
from cloud.access import Role, create_api_token
from cloud.credentials import hash_secret
from cloud.users import create_user
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
