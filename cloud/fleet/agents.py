"""Edge agents: enrollment, the credential every RPC carries, and what they report about themselves."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from cloud.access.credentials import CREDENTIAL_PREFIX, ENROLLMENT_PREFIX, hash_secret, new_secret
from cloud.shipping.leases import lease_for_agent, retire_leases
from cloud.storage import schema
from cloud.storage.store import CloudStore, dumps
from dockside.errors import AuthError, InputError, NotFound

__all__ = [
    "AgentIdentity",
    "DeviceReport",
    "Enrollment",
    "StatusReport",
    "authenticate_agent",
    "create_enrollment_tokens",
    "enroll_agent",
    "list_agents",
    "report_status",
    "revoke_agent",
]

MAX_DEVICES = 512
MAX_TOKENS_AT_ONCE = 100_000
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """An authenticated agent and the scope it may see."""

    agent_id: str
    tenant_id: int
    warehouse_id: int
    warehouse: str


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What a successful enrollment gives the agent; the credential is shown only here."""

    agent_id: str
    credential: str
    warehouse: str
    tenant: str


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """One printer or scale as the agent sees it."""

    id: str
    kind: str
    station: str
    model: str
    address: str
    state: str
    message: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    """An agent's periodic report."""

    agent_version: str
    revision: int
    outbox_depth: int
    devices: Sequence[DeviceReport]


def _text(field: str, value: str, limit: int) -> str:
    if len(value) > limit or not _PRINTABLE.match(value):
        raise InputError(
            f"{field} must be at most {limit} printable characters: fix the agent's {field}",
            code="invalid_argument",
        )
    return value


def create_enrollment_tokens(
    store: CloudStore, tenant_id: int, warehouse: str, count: int, *, ttl_s: int
) -> list[str]:
    """`count` one-time enrollment tokens for one warehouse, made in one transaction.

    For provisioning many PCs at once (a new site, a load test): each token is still traded
    by its own agent through Enroll for its own credential. Only hashes are stored.
    """
    if not 1 <= count <= MAX_TOKENS_AT_ONCE:
        raise InputError(
            f"make between 1 and {MAX_TOKENS_AT_ONCE} tokens at once (asked for {count})",
            code="invalid_argument",
        )
    tokens = [new_secret(ENROLLMENT_PREFIX) for _ in range(count)]
    with store.write() as tx:
        wh_id = tx.conn.execute(
            select(schema.warehouses.c.id).where(
                schema.warehouses.c.tenant_id == tenant_id, schema.warehouses.c.code == warehouse
            )
        ).scalar_one_or_none()
        if wh_id is None:
            raise NotFound(f"there is no warehouse {warehouse!r}: create it first")
        expires_at = tx.now + timedelta(seconds=ttl_s)
        tx.conn.execute(
            insert(schema.enrollment_tokens),
            [
                {
                    "tenant_id": tenant_id,
                    "warehouse_id": wh_id,
                    "token_hash": hash_secret(token),
                    "created_at": tx.now,
                    "expires_at": expires_at,
                }
                for token in tokens
            ],
        )
    return tokens


def enroll_agent(store: CloudStore, token: str, *, hostname: str, agent_version: str) -> Enrollment:
    """Trade a one-time enrollment token for a new agent identity and credential."""
    hostname = _text("hostname", hostname, 253)
    agent_version = _text("agent_version", agent_version, 64)
    if not token:
        raise AuthError("no enrollment token was sent: ask an admin for one and pass it with --token")
    tokens = schema.enrollment_tokens
    agent_id = f"agt_{uuid.uuid4().hex}"
    credential = new_secret(CREDENTIAL_PREFIX)
    with store.write() as tx:
        row = tx.conn.execute(
            select(
                tokens.c.id,
                tokens.c.tenant_id,
                tokens.c.warehouse_id,
                tokens.c.expires_at,
                tokens.c.used_at,
                schema.warehouses.c.code.label("warehouse"),
                schema.tenants.c.code.label("tenant"),
            )
            .join(schema.warehouses, schema.warehouses.c.id == tokens.c.warehouse_id)
            .join(schema.tenants, schema.tenants.c.id == tokens.c.tenant_id)
            .where(tokens.c.token_hash == hash_secret(token))
        ).first()
        if row is None:
            raise AuthError("this enrollment token is unknown: check it, or ask an admin for a new one")
        if row.used_at is not None:
            raise AuthError(
                "this enrollment token was already used (tokens are one-time): ask an admin for a new one"
            )
        if row.expires_at <= tx.now:
            raise AuthError(
                f"this enrollment token expired at {row.expires_at.isoformat()}: ask an admin for a new one"
            )
        # The used_at guard makes two agents racing with one token end with exactly one winner.
        taken = tx.conn.execute(
            update(tokens)
            .where(tokens.c.id == row.id, tokens.c.used_at.is_(None))
            .values(used_at=tx.now, agent_id=agent_id)
        ).rowcount
        if taken != 1:
            raise AuthError(
                "this enrollment token was already used (tokens are one-time): ask an admin for a new one"
            )
        tx.conn.execute(
            insert(schema.agents).values(
                id=agent_id,
                tenant_id=row.tenant_id,
                warehouse_id=row.warehouse_id,
                credential_hash=hash_secret(credential),
                hostname=hostname,
                version=agent_version,
                enrolled_at=tx.now,
                revision=0,
                outbox_depth=0,
                devices="[]",
            )
        )
        # Numbers for offline packing from every range and SSCC carrier, before the first Watch.
        lease_for_agent(tx, int(row.tenant_id), agent_id)
    return Enrollment(agent_id=agent_id, credential=credential, warehouse=row.warehouse, tenant=row.tenant)


def authenticate_agent(store: CloudStore, credential: str) -> AgentIdentity:
    """The agent behind a credential, or AuthError."""
    if not credential:
        raise AuthError(
            "no agent credential was sent: enroll the agent, then send 'authorization: Bearer <credential>'"
        )
    agents = schema.agents
    with store.read() as conn:
        row = conn.execute(
            select(agents.c.id, agents.c.tenant_id, agents.c.warehouse_id, schema.warehouses.c.code)
            .join(schema.warehouses, schema.warehouses.c.id == agents.c.warehouse_id)
            .where(agents.c.credential_hash == hash_secret(credential), agents.c.revoked_at.is_(None))
        ).first()
    if row is None:
        raise AuthError(
            "this agent credential is unknown or revoked: enroll the agent again with a new token"
        )
    return AgentIdentity(
        agent_id=row.id, tenant_id=int(row.tenant_id), warehouse_id=int(row.warehouse_id), warehouse=row.code
    )


def report_status(store: CloudStore, agent: AgentIdentity, report: StatusReport) -> datetime:
    """Store an agent's report (last seen, version, revision, outbox depth, devices); returns now."""
    version = _text("agent_version", report.agent_version, 64)
    if len(report.devices) > MAX_DEVICES:
        raise InputError(
            f"a status report lists at most {MAX_DEVICES} devices (got {len(report.devices)}): "
            "report the stations' devices only",
            code="invalid_argument",
        )
    if report.revision < 0 or report.outbox_depth < 0:
        raise InputError(
            "revision and outbox_depth cannot be negative: fix the agent's report", code="invalid_argument"
        )
    devices = [
        {
            "id": _text("device id", device.id, 128),
            "kind": _text("device kind", device.kind, 32),
            "station": _text("device station", device.station, 64),
            "model": _text("device model", device.model, 128),
            "address": _text("device address", device.address, 256),
            "state": _text("device state", device.state, 32),
            "message": _text("device message", device.message, 512),
        }
        for device in report.devices
    ]
    with store.write() as tx:
        tx.conn.execute(
            update(schema.agents)
            .where(schema.agents.c.id == agent.agent_id)
            .values(
                last_seen=tx.now,
                version=version,
                revision=report.revision,
                outbox_depth=report.outbox_depth,
                devices=dumps(devices),
            )
        )
        return tx.now


def list_agents(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """The fleet of a tenant: each agent's identity, health, devices, last self-update and revocation.

    Revoked agents stay listed (with `revoked_at`) so an admin can see what was cut off and when;
    `update` is the agent's latest self-update report (installed, refused, rolled_back) or None.
    """
    agents = schema.agents
    reports = schema.agent_update_reports
    # The newest report per agent: the highest id (ids grow with time within a tenant).
    latest = (
        select(reports.c.agent_id, func.max(reports.c.id).label("report_id"))
        .where(reports.c.tenant_id == tenant_id)
        .group_by(reports.c.agent_id)
        .subquery()
    )
    with store.read() as conn:
        rows = conn.execute(
            select(
                agents,
                schema.warehouses.c.code.label("warehouse"),
                reports.c.version.label("update_version"),
                reports.c.outcome.label("update_outcome"),
                reports.c.message.label("update_message"),
                reports.c.reported_at.label("update_reported_at"),
            )
            .join(schema.warehouses, schema.warehouses.c.id == agents.c.warehouse_id)
            .outerjoin(latest, latest.c.agent_id == agents.c.id)
            .outerjoin(reports, reports.c.id == latest.c.report_id)
            .where(agents.c.tenant_id == tenant_id)
            .order_by(agents.c.enrolled_at, agents.c.id)
        ).mappings()
        return [
            {
                "id": row["id"],
                "warehouse": row["warehouse"],
                "hostname": row["hostname"],
                "version": row["version"],
                "enrolled_at": row["enrolled_at"].isoformat(),
                "last_seen": row["last_seen"].isoformat() if row["last_seen"] else None,
                "revision": row["revision"],
                "outbox_depth": row["outbox_depth"],
                "devices": json.loads(row["devices"]),
                "update": _update_outcome(row),
                "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
            }
            for row in rows
        ]


def _update_outcome(row: Any) -> dict[str, Any] | None:
    if row["update_outcome"] is None:
        return None
    return {
        "version": row["update_version"],
        "outcome": row["update_outcome"],
        "message": row["update_message"],
        "reported_at": row["update_reported_at"].isoformat(),
    }


def revoke_agent(
    store: CloudStore, tenant_id: int, agent_id: str, *, warehouses: Collection[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Revoke an agent's credential: every later RPC is refused and its open streams end now.

    Returns the agent before and after, for the audit log. With `warehouses`, an agent of another
    warehouse is as missing as an unknown one (404). Revoking twice is not an error (the first
    revocation time is kept). The store's revocation signal reaches this process's streams after
    the commit (of the caller's unit of work, if any) and, on PostgreSQL, every replica's (NOTIFY
    on commit).
    """
    agents, sites = schema.agents, schema.warehouses
    with store.write() as tx:
        query = (
            select(agents.c.id, agents.c.revoked_at, sites.c.code)
            .join(sites, sites.c.id == agents.c.warehouse_id)
            .where(agents.c.id == agent_id, agents.c.tenant_id == tenant_id)
        )
        if warehouses is not None:
            query = query.where(sites.c.code.in_(sorted(warehouses)))
        row = tx.conn.execute(query).first()
        if row is None:
            raise NotFound(
                f"there is no agent {agent_id!r} in your scope: list agents with GET /api/v1/agents"
            )
        revoked_at = row.revoked_at
        if revoked_at is None:
            revoked_at = tx.now
            tx.conn.execute(update(agents).where(agents.c.id == agent_id).values(revoked_at=revoked_at))
            # Its unused tracking numbers are never issued again, nor counted as free.
            retire_leases(tx, tenant_id, agent_id)
        store.announce_revocation(tx, agent_id)
        tx.after_commit(lambda: store.revocations.revoke(agent_id))
    before = {
        "id": agent_id,
        "warehouse": row.code,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }
    return before, {**before, "revoked_at": revoked_at.isoformat()}
