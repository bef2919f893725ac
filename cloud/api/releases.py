"""Agent release calls: admins publish and assign releases; agents fetch theirs and report outcomes.

Admin side (API token, admin role):
    POST /api/v1/releases?version=V      body: the binary (application/octet-stream);
                                         header X-Release-Signature (base64 Ed25519),
                                         optional X-Release-SHA256 to catch a damaged upload
    GET  /api/v1/releases                every release, newest first
    GET  /api/v1/releases/{version}      one release, its warehouses and each agent's outcome
    POST /api/v1/releases/{version}/assign   {"warehouses": ["WH1", ...]}
Every publish of new bytes and every assignment is in the audit log (object kind "release",
tenant-wide), in the same transaction as the write.
Agent side (the agent credential as bearer):
    GET  /api/v1/agent/release                    the assigned release, or 204
    GET  /api/v1/agent/release/{version}/binary   its bytes
    POST /api/v1/agent/update-reports             {"version", "outcome", "message"}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.callers import Caller, Store, store_of
from cloud.access.principals import Principal, Role
from cloud.access.roles import Forbidden, require_warehouse
from cloud.fleet import releases
from cloud.fleet.agents import AgentIdentity, authenticate_agent
from cloud.fleet.warehouses import Code as WarehouseCode
from cloud.records import audit
from cloud.storage.store import CloudStore

__all__ = ["RELEASE_MAX_BODY_BYTES", "router"]

RELEASE_MAX_BODY_BYTES = releases.MAX_RELEASE_BYTES
Version = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9][0-9A-Za-z.+-]*$")]

router = APIRouter(prefix="/api/v1")


def release_admin(caller: Caller) -> Principal:
    """Only admins publish or assign agent binaries: they run on every packing PC."""
    if caller.role is not Role.ADMIN:
        raise Forbidden("only an admin token may publish or assign agent releases: ask an admin")
    return caller


def calling_agent(request: Request) -> AgentIdentity:
    """The agent behind the bearer credential (401 otherwise)."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    return authenticate_agent(store_of(request), credential.strip() if scheme.lower() == "bearer" else "")


Admin = Annotated[Principal, Depends(release_admin)]
CallingAgent = Annotated[AgentIdentity, Depends(calling_agent)]


class Assignment(BaseModel):
    """Which warehouses should run a release."""

    model_config = ConfigDict(extra="forbid")

    warehouses: Annotated[list[WarehouseCode], Field(min_length=1, max_length=1000)]


class UpdateReport(BaseModel):
    """How an agent's update went."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(min_length=1, max_length=64)]
    outcome: Literal["installed", "refused", "rolled_back"]
    message: Annotated[str, Field(max_length=1000)] = ""


@router.post("/releases", status_code=201, summary="Publish a signed agent release")
async def publish_release(
    request: Request,
    response: Response,
    caller: Admin,
    store: Store,
    version: Annotated[str, Query(min_length=1, max_length=64)],
    signature: Annotated[str, Header(alias="X-Release-Signature", min_length=1, max_length=128)],
    sha256: Annotated[str | None, Header(alias="X-Release-SHA256", max_length=64)] = None,
) -> Any:
    """Verify the upload's signature against the release public key and store it (201; 200 if identical).

    Checked before a byte of the body is read: the version, that this cloud has a release key, and
    the declared size. The body then streams to a temporary file, hashed on the way.
    """
    releases.check_version(version)
    releases.release_public_key()
    releases.check_release_size(request.headers.get("content-length"))
    upload = await releases.spool_release(request.stream())
    try:
        release, created = await run_in_threadpool(
            _publish, store, caller, version, upload, signature, sha256
        )
    finally:
        upload.close()
    response.status_code = 201 if created else 200
    return release


def _publish(
    store: CloudStore,
    caller: Principal,
    version: str,
    upload: releases.SpooledRelease,
    signature: str,
    sha256: str | None,
) -> tuple[dict[str, Any], bool]:
    """Store the release and, when it is new, its audit entry, in one transaction."""
    with store.unit_of_work():
        release, created = releases.publish_release(
            store, caller.tenant_id, version=version, upload=upload, signature=signature, sha256=sha256
        )
        if created:
            after = {key: release[key] for key in ("version", "sha256", "size")}
            audit.record(store, caller, "publish_release", "release", version, None, after)
    return release, created


@router.get("/releases", summary="Agent releases, newest first")
def list_releases(caller: Admin, store: Store) -> Any:
    """Every release's version, SHA-256, signature, size and publication time."""
    return {"releases": releases.list_releases(store, caller.tenant_id)}


@router.get("/releases/{version}", summary="One agent release and its rollout")
def get_release(version: Version, caller: Admin, store: Store) -> Any:
    """The release, the warehouses assigned to it and every agent's reported outcome."""
    return releases.get_release(store, caller.tenant_id, version)


@router.post("/releases/{version}/assign", summary="Assign a release to warehouses")
def assign_release(version: Version, body: Assignment, caller: Admin, store: Store) -> Any:
    """Their agents download, verify, try and keep (or roll back) this release."""
    codes = [require_warehouse(caller, code) for code in body.warehouses]
    with store.unit_of_work():
        before = releases.assigned_versions(store, caller.tenant_id, codes)
        assigned = releases.assign_release(store, caller.tenant_id, version, codes)
        after = dict.fromkeys(before, version)
        audit.record(
            store, caller, "assign_release", "release", version, {"warehouses": before}, {"warehouses": after}
        )
    return assigned


@router.get("/agent/release", summary="The release assigned to the calling agent", include_in_schema=True)
def agent_release(agent: CallingAgent, store: Store) -> Any:
    """For agents: the release their warehouse should run (204 when none is assigned)."""
    release = releases.assigned_release(store, agent)
    return Response(status_code=204) if release is None else release


@router.get("/agent/release/{version}/binary", summary="Download an assigned release")
def agent_release_binary(version: Version, agent: CallingAgent, store: Store) -> Response:
    """For agents: the bytes of a release assigned to their warehouse."""
    blob = releases.release_binary(store, agent, version)
    return Response(content=blob, media_type="application/octet-stream")


@router.post("/agent/update-reports", status_code=201, summary="Report how an update went")
def agent_update_report(body: UpdateReport, agent: CallingAgent, store: Store) -> Any:
    """For agents: installed, refused (bad checksum or signature) or rolled_back (failed health)."""
    at = releases.record_update_report(
        store, agent, version=body.version, outcome=body.outcome, message=body.message
    )
    return {"recorded_at": at.isoformat()}
