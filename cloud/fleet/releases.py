"""Agent releases: publish a signed binary, assign it to warehouses, hand it to agents, log outcomes.

A release is (version, SHA-256, Ed25519 signature, bytes). The release tooling signs with the
private key (`dockside-cloud keygen-release` / `sign-release`); the cloud only verifies, with the
public key in `$DOCKSIDE_RELEASE_PUBLIC_KEY`, and refuses what does not verify, so a stolen
admin token alone cannot push a binary to the fleet. Agents check the same signature again
before running anything. The signed message covers the version and the digest (see
`signed_message`), the same bytes `edge_agent.update.release` checks.

An upload is bounded before it costs anything: the API checks the version, that this cloud has
a release key and the declared size before it reads a byte of the body, then `spool_release`
streams the body to an unnamed temporary file, hashing it on the way, and stops at
MAX_RELEASE_BYTES. The signature is checked against that digest, so only a release the key
signed is ever read back (once, to store it in the database).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from sqlalchemy import and_, delete, insert, select

from cloud.fleet.agents import AgentIdentity
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import Conflict, DocksideError, InputError, NotFound

__all__ = [
    "MAX_RELEASE_BYTES",
    "OUTCOMES",
    "PUBLIC_KEY_ENV",
    "BadRelease",
    "NoReleaseKey",
    "ReleaseTooLarge",
    "SpooledRelease",
    "assign_release",
    "assigned_release",
    "assigned_versions",
    "check_release_size",
    "check_version",
    "generate_release_key",
    "get_release",
    "list_releases",
    "publish_release",
    "record_update_report",
    "release_binary",
    "release_public_key",
    "sign_release",
    "sign_release_digest",
    "signed_message",
    "spool_release",
]

PUBLIC_KEY_ENV = "DOCKSIDE_RELEASE_PUBLIC_KEY"
MAX_RELEASE_BYTES = 200 * 1024 * 1024
OUTCOMES = ("installed", "refused", "rolled_back")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}([a-z0-9.+-]{0,32})$")
# Spooled writes go to the temporary file a megabyte at a time, each off the event loop.
_SPOOL_WRITE_BYTES = 1024 * 1024


class BadRelease(InputError):
    """A release whose checksum or signature does not verify."""

    code = "bad_release"
    http_status = 422


class ReleaseTooLarge(InputError):
    """A release upload over MAX_RELEASE_BYTES, declared or sent."""

    code = "too_large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(
            f"a release is at most {MAX_RELEASE_BYTES:,} bytes: build a smaller agent binary "
            "(the one-file agent is far smaller)"
        )


class NoReleaseKey(DocksideError):
    """The cloud was started without the release public key."""

    code = "release_key_missing"
    http_status = 503


def signed_message(version: str, sha256: str) -> bytes:
    """The exact bytes a release signature covers (the agent checks the same)."""
    return f"dockside-agent-release\n{version}\n{sha256.lower()}\n".encode()


def generate_release_key() -> tuple[bytes, str]:
    """A new signing key: (private key PEM for the release tooling, public key base64 for everyone)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


def sign_release(private_pem: bytes, version: str, blob: bytes) -> str:
    """The base64 signature of `blob` released as `version`."""
    return sign_release_digest(private_pem, version, hashlib.sha256(blob).hexdigest())


def sign_release_digest(private_pem: bytes, version: str, sha256: str) -> str:
    """The base64 signature of the binary whose SHA-256 (hex) is `sha256`, released as `version`."""
    check_version(version)  # a signature over a bad version could never be published
    key = load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("the release signing key must be an Ed25519 private key (PEM)", code="bad_key")
    return base64.b64encode(key.sign(signed_message(version, sha256))).decode()


def release_public_key() -> str:
    """The public key releases must verify against; NoReleaseKey when unset."""
    key = os.environ.get(PUBLIC_KEY_ENV, "").strip()
    if not key:
        raise NoReleaseKey(
            f"this cloud has no release public key: start it with ${PUBLIC_KEY_ENV} set to the base64 "
            "public key printed by `dockside-cloud keygen-release`"
        )
    return key


def check_version(version: str) -> str:
    """`version` if it is a release version (1.4.2, 1.4.2-rc1); InputError otherwise."""
    if not _VERSION.match(version):
        raise InputError(
            f"{version[:80]!r} is not a release version: write it like 1.4.2 (digits and dots, "
            "an optional suffix such as -rc1)",
            code="invalid_version",
        )
    return version


def check_release_size(declared: str | None) -> None:
    """Refuse a declared Content-Length over MAX_RELEASE_BYTES before any of the body is read."""
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_RELEASE_BYTES:
        raise ReleaseTooLarge()


@dataclass
class SpooledRelease:
    """An uploaded binary in an unnamed temporary file, with its size and SHA-256 (hex)."""

    file: IO[bytes]
    size: int
    sha256: str

    def read(self) -> bytes:
        """The whole binary (only for a release whose signature verified)."""
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


async def spool_release(
    chunks: AsyncIterable[bytes], *, max_bytes: int = MAX_RELEASE_BYTES
) -> SpooledRelease:
    """Stream an upload to a temporary file, hashing it; ReleaseTooLarge past `max_bytes`."""
    digest = hashlib.sha256()
    size = 0
    pending = bytearray()
    handle = tempfile.TemporaryFile(prefix="dockside-release-")  # noqa: SIM115 - closed by the caller
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise ReleaseTooLarge()
            digest.update(chunk)
            pending += chunk
            if len(pending) >= _SPOOL_WRITE_BYTES:
                await asyncio.to_thread(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(handle.write, bytes(pending))
    except BaseException:
        handle.close()
        raise
    return SpooledRelease(handle, size, digest.hexdigest())


def _verify(version: str, digest: str, signature: str, public_key: str) -> str:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
    except (binascii.Error, ValueError):
        raise NoReleaseKey(
            f"${PUBLIC_KEY_ENV} is not a base64 Ed25519 public key: set it to the key printed by keygen"
        ) from None
    try:
        key.verify(base64.b64decode(signature, validate=True), signed_message(version, digest))
    except (InvalidSignature, binascii.Error, ValueError):
        raise BadRelease(
            f"the signature of release {version} does not verify against the release public key: sign "
            "these exact bytes with the release key (`dockside-cloud sign-release`) and upload again"
        ) from None
    return digest


def publish_release(
    store: CloudStore,
    tenant_id: int,
    *,
    version: str,
    upload: SpooledRelease,
    signature: str,
    sha256: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Verify and store a release; (release, created). Republishing the same bytes is a no-op."""
    check_version(version)
    if not upload.size:
        raise InputError(
            "the release body is empty: upload the agent binary as the request body", code="empty"
        )
    if upload.size > MAX_RELEASE_BYTES:
        raise ReleaseTooLarge()
    digest = upload.sha256
    if sha256 is not None and sha256.lower() != digest:
        raise BadRelease(
            f"the upload's SHA-256 is {digest}, not the {sha256[:64]} you sent: the upload was damaged "
            "or the wrong file was sent; upload again"
        )
    _verify(version, digest, signature, release_public_key())
    table = schema.agent_releases
    with store.write() as tx:
        row = tx.conn.execute(
            select(table.c.sha256).where(table.c.tenant_id == tenant_id, table.c.version == version)
        ).first()
        if row is not None:
            if row.sha256 != digest:
                raise Conflict(
                    f"release {version} was already published with other bytes: releases never change, "
                    "publish the new binary under a new version"
                )
            created = False
        else:
            tx.conn.execute(
                insert(table).values(
                    tenant_id=tenant_id,
                    version=version,
                    sha256=digest,
                    signature=signature,
                    size=upload.size,
                    binary=upload.read(),
                    created_at=tx.now,
                )
            )
            created = True
    return get_release(store, tenant_id, version), created


def _release_row(conn: Any, tenant_id: int, version: str) -> Any:
    table = schema.agent_releases
    row = conn.execute(
        select(table.c.version, table.c.sha256, table.c.signature, table.c.size, table.c.created_at).where(
            table.c.tenant_id == tenant_id, table.c.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"there is no release {version[:80]!r}: publish it with POST /api/v1/releases first")
    return row


def _describe(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "sha256": row.sha256,
        "signature": row.signature,
        "size": row.size,
        "created_at": row.created_at.isoformat(),
    }


def get_release(store: CloudStore, tenant_id: int, version: str) -> dict[str, Any]:
    """One release, the warehouses it is assigned to and every agent's reported outcome."""
    with store.read() as conn:
        release = _describe(_release_row(conn, tenant_id, version))
        assignments = schema.agent_release_assignments
        release["warehouses"] = sorted(
            conn.execute(
                select(schema.warehouses.c.code)
                .join(assignments, assignments.c.warehouse_id == schema.warehouses.c.id)
                .where(assignments.c.tenant_id == tenant_id, assignments.c.version == version)
            ).scalars()
        )
        reports = schema.agent_update_reports
        release["reports"] = [
            {
                "agent_id": row.agent_id,
                "outcome": row.outcome,
                "message": row.message,
                "reported_at": row.reported_at.isoformat(),
            }
            for row in conn.execute(
                select(reports)
                .where(reports.c.tenant_id == tenant_id, reports.c.version == version)
                .order_by(reports.c.id)
            )
        ]
    return release


def list_releases(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """Every release of the tenant, newest first (without the binaries)."""
    table = schema.agent_releases
    with store.read() as conn:
        rows = conn.execute(
            select(table.c.version, table.c.sha256, table.c.signature, table.c.size, table.c.created_at)
            .where(table.c.tenant_id == tenant_id)
            .order_by(table.c.created_at.desc(), table.c.id.desc())
        )
        return [_describe(row) for row in rows]


def assign_release(
    store: CloudStore, tenant_id: int, version: str, warehouse_codes: list[str]
) -> dict[str, Any]:
    """Make `version` the release agents of these warehouses should run (replacing earlier ones)."""
    if not warehouse_codes:
        raise InputError("name at least one warehouse to assign the release to", code="invalid_input")
    assignments = schema.agent_release_assignments
    with store.write() as tx:
        _release_row(tx.conn, tenant_id, version)
        ids = dict(
            tx.conn.execute(
                select(schema.warehouses.c.code, schema.warehouses.c.id).where(
                    schema.warehouses.c.tenant_id == tenant_id, schema.warehouses.c.code.in_(warehouse_codes)
                )
            ).all()
        )
        missing = sorted(set(warehouse_codes) - set(ids))
        if missing:
            raise NotFound(f"there is no warehouse {', '.join(missing)}: create it first, or fix the code")
        for warehouse_id in ids.values():
            tx.conn.execute(delete(assignments).where(assignments.c.warehouse_id == warehouse_id))
            tx.conn.execute(
                insert(assignments).values(
                    tenant_id=tenant_id, warehouse_id=warehouse_id, version=version, assigned_at=tx.now
                )
            )
    return get_release(store, tenant_id, version)


def assigned_versions(store: CloudStore, tenant_id: int, warehouse_codes: list[str]) -> dict[str, str | None]:
    """The release each of these warehouses is assigned now (None: none yet), for the audit log."""
    assignments, warehouses = schema.agent_release_assignments, schema.warehouses
    with store.read() as conn:
        found = dict(
            conn.execute(
                select(warehouses.c.code, assignments.c.version)
                .join(assignments, assignments.c.warehouse_id == warehouses.c.id)
                .where(warehouses.c.tenant_id == tenant_id, warehouses.c.code.in_(warehouse_codes))
            ).all()
        )
    return {code: found.get(code) for code in sorted(set(warehouse_codes))}


def assigned_release(store: CloudStore, agent: AgentIdentity) -> dict[str, Any] | None:
    """The release assigned to the agent's warehouse (what it should run), or None."""
    assignments = schema.agent_release_assignments
    with store.read() as conn:
        version = conn.execute(
            select(assignments.c.version).where(assignments.c.warehouse_id == agent.warehouse_id)
        ).scalar()
        if version is None:
            return None
        return _describe(_release_row(conn, agent.tenant_id, version))


def release_binary(store: CloudStore, agent: AgentIdentity, version: str) -> bytes:
    """The bytes of `version`, if it is the release assigned to the agent's warehouse."""
    table = schema.agent_releases
    assignments = schema.agent_release_assignments
    with store.read() as conn:
        blob = conn.execute(
            select(table.c.binary)
            .join(
                assignments,
                and_(assignments.c.tenant_id == table.c.tenant_id, assignments.c.version == table.c.version),
            )
            .where(
                table.c.tenant_id == agent.tenant_id,
                table.c.version == version,
                assignments.c.warehouse_id == agent.warehouse_id,
            )
        ).scalar()
    if blob is None:
        raise NotFound(f"release {version[:80]!r} is not assigned to warehouse {agent.warehouse}")
    return bytes(blob)


def record_update_report(
    store: CloudStore, agent: AgentIdentity, *, version: str, outcome: str, message: str
) -> datetime:
    """Store how an agent's update went; returns when it was recorded."""
    if outcome not in OUTCOMES:
        raise InputError(f"outcome must be one of {', '.join(OUTCOMES)}", code="invalid_input")
    with store.write() as tx:
        tx.conn.execute(
            insert(schema.agent_update_reports).values(
                tenant_id=agent.tenant_id,
                agent_id=agent.agent_id,
                version=version[:64],
                outcome=outcome,
                message=message[:1000],
                reported_at=tx.now,
            )
        )
        return tx.now


def _main(argv: list[str]) -> int:  # pragma: no cover - exercised through tests by its functions
    """`python -m cloud.fleet.releases keygen PRIVATE.pem` | `sign PRIVATE.pem VERSION BINARY`."""
    if len(argv) == 2 and argv[0] == "keygen":
        private, public = generate_release_key()
        fd = os.open(argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        print(public)
        return 0
    if len(argv) == 4 and argv[0] == "sign":
        with open(argv[1], "rb") as key, open(argv[3], "rb") as binary:
            print(sign_release_digest(key.read(), argv[2], hashlib.file_digest(binary, "sha256").hexdigest()))
        return 0
    print(
        "usage: python -m cloud.fleet.releases keygen PRIVATE.pem"
        "   (prints the public key; keep the PEM secret)\n"
        "       python -m cloud.fleet.releases sign PRIVATE.pem VERSION BINARY   (prints the signature)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
