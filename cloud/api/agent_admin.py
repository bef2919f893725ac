"""Admin calls on single agents: revoking one cuts it off at once (POST /api/v1/agents/{id}/revoke)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Security
from fastapi.security import HTTPBearer

from cloud import agents
from cloud.access import Role, authenticate_api_token
from cloud.store import CloudStore
from dockside.errors import DocksideError

__all__ = ["router"]

AgentId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(prefix="/api/v1")
_bearer = HTTPBearer(auto_error=False, description="A token from `dockside-cloud create-token`.")


class Forbidden(DocksideError):
    """The caller's role may not do this."""

    code = "forbidden"
    http_status = 403


@router.post("/agents/{agent_id}/revoke", summary="Revoke an agent's credential")
def revoke_agent(
    agent_id: AgentId, request: Request, _scheme: Annotated[Any, Security(_bearer)] = None
) -> Any:
    """Refuse the agent's credential from now on and end its open Watch streams (UNAUTHENTICATED).

    The agent has to be enrolled again with a new token. Revoking twice answers the same.
    """
    store: CloudStore = request.app.state.store
    caller = authenticate_api_token(store, request.headers.get("authorization"))
    if caller.role is not Role.ADMIN:
        raise Forbidden("revoking an agent needs an admin token: ask an admin, or use an admin token")
    return agents.revoke_agent(store, caller.tenant_id, agent_id)
