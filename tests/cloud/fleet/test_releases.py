"""Agent releases on a running cloud: publish signed binaries, assign them, serve them, log outcomes."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import update

from cloud.access.principals import Role, create_api_token
from cloud.fleet.releases import PUBLIC_KEY_ENV, generate_release_key, sign_release, signed_message
from cloud.storage import schema
from tests.cloud.conftest import RunningCloud

BINARY = b"#!/bin/sh\necho 'dockside-agent, version 0.2.0'\n"


@pytest.fixture
def release_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A release signing key; the cloud trusts its public half."""
    private, public = generate_release_key()
    monkeypatch.setenv(PUBLIC_KEY_ENV, public)
    return private


def _publish(
    cloud: RunningCloud, version: str, blob: bytes, signature: str, **headers: str
) -> httpx.Response:
    return cloud.api.post(
        "/api/v1/releases",
        params={"version": version},
        content=blob,
        headers={"X-Release-Signature": signature, "Content-Type": "application/octet-stream", **headers},
    )


def _agent_client(cloud: RunningCloud, credential: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://{cloud.http_address}", headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )


def test_the_signature_covers_version_and_digest(release_key: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    signature = base64.b64decode(sign_release(release_key, "0.2.0", BINARY))
    public = load_pem_private_key(release_key, password=None).public_key()
    assert isinstance(public, Ed25519PublicKey)
    public.verify(signature, signed_message("0.2.0", hashlib.sha256(BINARY).hexdigest()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, signed_message("0.2.1", hashlib.sha256(BINARY).hexdigest()))


def test_a_signed_release_is_published_once_and_listed(cloud: RunningCloud, release_key: bytes) -> None:
    signature = sign_release(release_key, "0.2.0", BINARY)

    first = _publish(
        cloud, "0.2.0", BINARY, signature, **{"X-Release-SHA256": hashlib.sha256(BINARY).hexdigest()}
    )
    again = _publish(cloud, "0.2.0", BINARY, signature)
    other_bytes = _publish(cloud, "0.2.0", BINARY + b"#", sign_release(release_key, "0.2.0", BINARY + b"#"))

    assert first.status_code == 201, first.text
    assert first.json()["sha256"] == hashlib.sha256(BINARY).hexdigest()
    assert first.json()["size"] == len(BINARY)
    assert again.status_code == 200
    assert other_bytes.status_code == 409
    assert "new version" in other_bytes.json()["error"]["message"]
    listed = cloud.api.get("/api/v1/releases").json()["releases"]
    assert [release["version"] for release in listed] == ["0.2.0"]


def test_bad_uploads_are_refused_with_the_fix(
    cloud: RunningCloud, release_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = sign_release(release_key, "0.2.0", BINARY)
    stranger, _ = generate_release_key()

    forged = _publish(cloud, "0.2.0", BINARY, sign_release(stranger, "0.2.0", BINARY))
    other_version = _publish(cloud, "0.3.0", BINARY, good)
    garbage = _publish(cloud, "0.2.0", BINARY, "not base64!")
    damaged = _publish(cloud, "0.2.0", BINARY, good, **{"X-Release-SHA256": "0" * 64})
    bad_version = _publish(cloud, "latest", BINARY, good)
    empty = _publish(cloud, "0.2.0", b"", good)
    unsigned = cloud.api.post("/api/v1/releases", params={"version": "0.2.0"}, content=BINARY)

    for refused in (forged, other_version, garbage):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "bad_release"
        assert "dockside-cloud sign-release" in refused.json()["error"]["message"]
    assert damaged.status_code == 422
    assert "upload again" in damaged.json()["error"]["message"]
    assert bad_version.status_code == 422
    assert "1.4.2" in bad_version.json()["error"]["message"]
    assert empty.status_code == 422
    assert unsigned.status_code == 422
    assert cloud.api.get("/api/v1/releases").json()["releases"] == []

    monkeypatch.delenv(PUBLIC_KEY_ENV)
    no_key = _publish(cloud, "0.2.0", BINARY, good)
    assert no_key.status_code == 503
    assert PUBLIC_KEY_ENV in no_key.json()["error"]["message"]


def test_only_admins_publish_and_assign(cloud: RunningCloud, release_key: bytes) -> None:
    token = create_api_token(cloud.store, name="editor", role=Role.EDITOR)
    with httpx.Client(
        base_url=f"http://{cloud.http_address}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as editor:
        refused = editor.post(
            "/api/v1/releases",
            params={"version": "0.2.0"},
            content=BINARY,
            headers={"X-Release-Signature": sign_release(release_key, "0.2.0", BINARY)},
        )
        assigned = editor.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1"]})
    assert refused.status_code == assigned.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"


def test_an_assigned_release_reaches_its_warehouse_agents_only(
    cloud: RunningCloud, release_key: bytes
) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    here, there = cloud.enroll("WH1"), cloud.enroll("WH2")
    assert _publish(cloud, "0.2.0", BINARY, sign_release(release_key, "0.2.0", BINARY)).status_code == 201
    with _agent_client(cloud, here.credential) as agent, _agent_client(cloud, there.credential) as elsewhere:
        assert agent.get("/api/v1/agent/release").status_code == 204

        assigned = cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1"]})

        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["warehouses"] == ["WH1"]
        offered = agent.get("/api/v1/agent/release")
        assert offered.status_code == 200
        assert offered.json()["version"] == "0.2.0"
        assert offered.json()["signature"] == sign_release(release_key, "0.2.0", BINARY)
        assert agent.get("/api/v1/agent/release/0.2.0/binary").content == BINARY
        assert elsewhere.get("/api/v1/agent/release").status_code == 204
        assert elsewhere.get("/api/v1/agent/release/0.2.0/binary").status_code == 404
        assert agent.get("/api/v1/agent/release/0.9.9/binary").status_code == 404


def test_assigning_refuses_unknown_releases_and_warehouses(cloud: RunningCloud, release_key: bytes) -> None:
    cloud.put_warehouse("WH1")
    assert _publish(cloud, "0.2.0", BINARY, sign_release(release_key, "0.2.0", BINARY)).status_code == 201

    no_release = cloud.api.post("/api/v1/releases/0.9.9/assign", json={"warehouses": ["WH1"]})
    no_warehouse = cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1", "NOPE"]})
    nothing = cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": []})
    extra = cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1"], "all": True})

    assert no_release.status_code == 404
    assert "POST /api/v1/releases" in no_release.json()["error"]["message"]
    assert no_warehouse.status_code == 404
    assert "NOPE" in no_warehouse.json()["error"]["message"]
    assert nothing.status_code == extra.status_code == 422
    assert cloud.api.get("/api/v1/releases/0.2.0").json()["warehouses"] == []
    # Refused assignments leave no trace in the audit log; the publish does.
    entries = cloud.api.get("/api/v1/audit", params={"object_kind": "release"}).json()["entries"]
    assert [e["action"] for e in entries] == ["publish_release"]


def test_publishing_and_assigning_are_audited_with_before_and_after(
    cloud: RunningCloud, release_key: bytes
) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    for version in ("0.2.0", "0.3.0"):
        blob = BINARY + version.encode()
        assert _publish(cloud, version, blob, sign_release(release_key, version, blob)).status_code == 201
    # Publishing the same bytes again changes nothing, so it logs nothing.
    assert _publish(cloud, "0.2.0", BINARY + b"0.2.0", sign_release(release_key, "0.2.0", BINARY + b"0.2.0"))
    assert cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1"]}).status_code == 200
    moved = cloud.api.post("/api/v1/releases/0.3.0/assign", json={"warehouses": ["WH1", "WH2"]})
    assert moved.status_code == 200

    entries = cloud.api.get("/api/v1/audit", params={"object_kind": "release"}).json()["entries"]
    assert [(e["action"], e["object_key"], e["actor_name"]) for e in entries] == [
        ("assign_release", "0.3.0", "tests"),
        ("assign_release", "0.2.0", "tests"),
        ("publish_release", "0.3.0", "tests"),
        ("publish_release", "0.2.0", "tests"),
    ]
    published = entries[3]["after"]
    assert published == {
        "version": "0.2.0",
        "sha256": hashlib.sha256(BINARY + b"0.2.0").hexdigest(),
        "size": len(BINARY) + 5,
    }
    assert (entries[1]["before"], entries[1]["after"]) == (
        {"warehouses": {"WH1": None}},
        {"warehouses": {"WH1": "0.2.0"}},
    )
    assert (entries[0]["before"], entries[0]["after"]) == (
        {"warehouses": {"WH1": "0.2.0", "WH2": None}},
        {"warehouses": {"WH1": "0.3.0", "WH2": "0.3.0"}},
    )


def test_agents_report_outcomes_that_admins_see(cloud: RunningCloud, release_key: bytes) -> None:
    cloud.put_warehouse("WH1")
    agent = cloud.enroll("WH1")
    assert _publish(cloud, "0.2.0", BINARY, sign_release(release_key, "0.2.0", BINARY)).status_code == 201
    with _agent_client(cloud, agent.credential) as client:
        installed = client.post(
            "/api/v1/agent/update-reports", json={"version": "0.2.0", "outcome": "installed", "message": "ok"}
        )
        bad = client.post("/api/v1/agent/update-reports", json={"version": "0.2.0", "outcome": "exploded"})
    anonymous = httpx.post(
        f"http://{cloud.http_address}/api/v1/agent/update-reports",
        json={"version": "0.2.0", "outcome": "installed"},
        timeout=30,
    )

    assert installed.status_code == 201, installed.text
    assert bad.status_code == 422
    assert anonymous.status_code == 401
    assert "enroll" in anonymous.json()["error"]["message"]
    reports = cloud.api.get("/api/v1/releases/0.2.0").json()["reports"]
    assert [(r["agent_id"], r["outcome"], r["message"]) for r in reports] == [
        (agent.agent_id, "installed", "ok")
    ]


def test_the_release_tool_makes_keys_and_signatures(tmp_path: Path) -> None:
    key = tmp_path / "release.pem"
    binary = tmp_path / "agent"
    binary.write_bytes(BINARY)

    made = subprocess.run(
        [sys.executable, "-m", "cloud.fleet.releases", "keygen", str(key)],
        capture_output=True,
        text=True,
        check=False,
    )
    signed = subprocess.run(
        [sys.executable, "-m", "cloud.fleet.releases", "sign", str(key), "0.2.0", str(binary)],
        capture_output=True,
        text=True,
        check=False,
    )
    wrong = subprocess.run(
        [sys.executable, "-m", "cloud.fleet.releases"], capture_output=True, text=True, check=False
    )

    assert made.returncode == 0, made.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(made.stdout.strip()))
    assert signed.returncode == 0, signed.stderr
    public.verify(
        base64.b64decode(signed.stdout.strip()), signed_message("0.2.0", hashlib.sha256(BINARY).hexdigest())
    )
    assert wrong.returncode == 2
    assert "usage" in wrong.stderr


def test_a_tampered_stored_binary_is_still_served_as_published(
    cloud: RunningCloud, release_key: bytes
) -> None:
    """The cloud does not re-hash on download: the agent's own check is what stops tampering."""
    cloud.put_warehouse("WH1")
    agent = cloud.enroll("WH1")
    assert _publish(cloud, "0.2.0", BINARY, sign_release(release_key, "0.2.0", BINARY)).status_code == 201
    assert cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1"]}).status_code == 200
    with cloud.store.write() as tx:
        tx.conn.execute(update(schema.agent_releases).values(binary=b"evil"))
    with _agent_client(cloud, agent.credential) as client:
        offered = client.get("/api/v1/agent/release").json()
        served = client.get("/api/v1/agent/release/0.2.0/binary").content
    assert hashlib.sha256(served).hexdigest() != offered["sha256"]


@pytest.mark.parametrize("code", ["WH\x00", "WH 1", "\u00db", "-WH", "W" * 33, ""])
def test_a_hostile_warehouse_code_in_an_assignment_is_refused_with_422(
    cloud: RunningCloud, release_key: bytes, code: str
) -> None:
    cloud.put_warehouse("WH1")
    assert _publish(cloud, "0.2.0", BINARY, sign_release(release_key, "0.2.0", BINARY)).status_code == 201
    refused = cloud.api.post("/api/v1/releases/0.2.0/assign", json={"warehouses": ["WH1", code]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"].startswith("warehouses.1")
    assert cloud.api.get("/api/v1/releases/0.2.0").json()["warehouses"] == []
