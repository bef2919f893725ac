"""Who this agent is: what `dockside-agent enroll` obtained from the cloud and stored."""

from __future__ import annotations

from dataclasses import dataclass

from dockside.errors import InputError
from edge_agent.store.database import Store, now_ms

__all__ = ["Identity", "NotEnrolled", "load_identity", "require_identity", "save_identity"]


class NotEnrolled(InputError):
    """The data dir holds no identity yet."""

    code = "not_enrolled"
    http_status = 409


@dataclass(frozen=True, slots=True)
class Identity:
    """The agent's id, secret credential, warehouse and the cloud it syncs with."""

    agent_id: str
    credential: str
    warehouse: str
    tenant: str
    cloud: str
    enrolled_at_ms: int

    def __repr__(self) -> str:
        # The credential must never reach a log line through a repr.
        return (
            f"Identity(agent_id={self.agent_id!r}, warehouse={self.warehouse!r}, "
            f"tenant={self.tenant!r}, cloud={self.cloud!r}, credential=<hidden>)"
        )


def load_identity(store: Store) -> Identity | None:
    """The stored identity, or None before enrollment."""
    row = store.conn.execute(
        "SELECT agent_id, credential, warehouse, tenant, cloud, enrolled_at_ms FROM identity WHERE id = 1"
    ).fetchone()
    return Identity(*row) if row else None


def require_identity(store: Store, data_dir: object) -> Identity:
    """The stored identity, or a NotEnrolled error that says how to enroll."""
    identity = load_identity(store)
    if identity is None:
        raise NotEnrolled(
            f"this agent is not enrolled (data dir {data_dir}): run "
            "`dockside-agent enroll --cloud HOST:PORT --token TOKEN` with a token from the cloud console"
        )
    return identity


def save_identity(
    store: Store, *, agent_id: str, credential: str, warehouse: str, tenant: str, cloud: str
) -> Identity:
    """Store the identity Enroll returned (the first and only one for this data dir)."""
    identity = Identity(agent_id, credential, warehouse, tenant, cloud, now_ms())
    with store.atomic():
        store.conn.execute(
            "INSERT INTO identity (id, agent_id, credential, warehouse, tenant, cloud, enrolled_at_ms) "
            "VALUES (1, ?, ?, ?, ?, ?, ?)",
            (agent_id, credential, warehouse, tenant, cloud, identity.enrolled_at_ms),
        )
    return identity
