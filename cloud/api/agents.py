"""Agent fleet calls: list the agents with their health, and revoke one (which cuts it off at once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from cloud.access.callers import Caller, ReadsSetup, Store
from cloud.access.principals import Role
from cloud.access.roles import Forbidden
from cloud.fleet import agents
from cloud.records import audit

__all__ = ["router"]

AgentId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(prefix="/api/v1")


@router.get("/agents", summary="The fleet of agents")
def list_agents(caller: ReadsSetup, store: Store) -> Any:
    """Each agent's id, warehouse, last seen, version, revision, outbox depth and devices."""
    fleet = agents.list_agents(store, caller.tenant_id)
    return {"agents": [agent for agent in fleet if caller.sees(agent["warehouse"])]}


@router.post("/agents/{agent_id}/revoke", summary="Revoke an agent's credential")
def revoke_agent(agent_id: AgentId, caller: Caller, store: Store) -> Any:
    """Refuse the agent's credential from now on and end its open Watch streams (UNAUTHENTICATED).

    The agent has to be enrolled again with a new token. Revoking twice answers the same. A token
    limited to some warehouses sees agents of other warehouses as missing (404). Every call is in
    the audit log, in the same transaction as the revocation.
    """
    if caller.role is not Role.ADMIN:
        raise Forbidden("revoking an agent needs an admin token: ask an admin, or use an admin token")
    with store.unit_of_work():
        before, after = agents.revoke_agent(store, caller.tenant_id, agent_id, warehouses=caller.warehouses)
        audit.record(store, caller, "revoke_agent", "agent", agent_id, before, after)
    return after
