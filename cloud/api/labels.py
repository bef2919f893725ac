"""Label template calls: versions (validated against their sample data), publish, staged rollout,
rollback and the PNG preview of a version.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.callers import EditsTemplates, ReadsSetup, Store
from cloud.access.roles import Forbidden, require_warehouse
from cloud.labels import rollout as template_rollout
from cloud.labels import templates
from cloud.labels.preview import PreviewCache
from cloud.records import audit

__all__ = ["PublishIn", "RollbackIn", "router"]

router = APIRouter(prefix="/api/v1")
TemplateName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/templates/{name}/versions", status_code=201, summary="Create a template version")
def create_template_version(
    name: TemplateName, body: templates.TemplateVersionIn, caller: EditsTemplates, store: Store
) -> Any:
    """Validate a new version against its sample data and store it as the next number (inactive)."""
    with store.unit_of_work():
        made = templates.create_template_version(store, caller.tenant_id, name, body)
        audit.record(store, caller, "create_template_version", "template", name, None, made)
    return made


@router.get("/templates/{name}/versions", summary="List a template's versions")
def list_template_versions(name: TemplateName, caller: ReadsSetup, store: Store) -> Any:
    """Every version of a template, oldest first."""
    return {"versions": templates.list_template_versions(store, caller.tenant_id, name)}


@router.get("/templates/{name}/versions/{n}", summary="One template version")
def get_template_version(name: TemplateName, n: VersionNumber, caller: ReadsSetup, store: Store) -> Any:
    """One version of a template."""
    return templates.get_template_version(store, caller.tenant_id, name, n)


class PublishIn(BaseModel):
    """Where a version goes: the chosen warehouses first (staged), or everywhere when omitted."""

    model_config = ConfigDict(extra="forbid")

    warehouses: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=32)]], Field(max_length=1000)] | None
    ) = None


@router.post("/templates/{name}/versions/{n}/publish", summary="Publish a template version")
def publish_template_version(
    name: TemplateName, n: VersionNumber, caller: EditsTemplates, store: Store, body: PublishIn | None = None
) -> Any:
    """Make version n active everywhere, or only in `warehouses` (a staged rollout); synced to agents."""
    if body is not None and body.warehouses is not None:
        codes = [require_warehouse(caller, code) for code in body.warehouses]
        before = audit.before_of(lambda: template_rollout.rollout_status(store, caller.tenant_id, name))
        with store.unit_of_work():
            status = template_rollout.publish_to_warehouses(store, caller.tenant_id, name, n, codes)
            audit.record(store, caller, "publish_template_to_warehouses", "template", name, before, status)
        return status
    if caller.warehouses is not None:
        raise Forbidden(
            f"this token is limited to warehouses {', '.join(sorted(caller.warehouses))}: "
            'publish to them with {"warehouses": [...]}, or use a token for the whole tenant'
        )
    before = audit.active_version_before(
        lambda: templates.list_template_versions(store, caller.tenant_id, name)
    )
    with store.unit_of_work():
        published = templates.publish_template_version(store, caller.tenant_id, name, n)
        after = {"active_version": n}
        if before != after:
            audit.record(store, caller, "publish_template_version", "template", name, before, after)
    return published


class RollbackIn(PublishIn):
    """The earlier version to go back to, everywhere or in the chosen warehouses."""

    version: Annotated[int, Field(ge=1, le=2**31 - 1)]


@router.post("/templates/{name}/rollback", summary="Go back to an earlier template version")
def rollback_template(name: TemplateName, body: RollbackIn, caller: EditsTemplates, store: Store) -> Any:
    """Make an earlier (immutable) version active again: a publish of that version, logged as a rollback."""
    target = PublishIn(warehouses=body.warehouses)
    with store.unit_of_work():  # the publish inside joins it: publish and both entries, or nothing
        answer = publish_template_version(name, body.version, caller, store, target)
        audit.record(store, caller, "rollback_template", "template", name, None, {"version": body.version})
    return answer


@router.get("/templates/{name}/rollout", summary="Where each version of a template runs")
def template_rollout_status(name: TemplateName, caller: ReadsSetup, store: Store) -> Any:
    """The tenant's active version and the warehouses running another (staged) one."""
    status = template_rollout.rollout_status(store, caller.tenant_id, name)
    status["warehouses"] = {code: v for code, v in status["warehouses"].items() if caller.sees(code)}
    return status


@router.get(
    "/templates/{name}/versions/{n}/preview.png",
    summary="A template version drawn with its sample data",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def template_preview(
    name: TemplateName, n: VersionNumber, caller: ReadsSetup, store: Store, request: Request
) -> Response:
    """A PNG of the version rendered with its sample data; X-Preview-Note says what it could not show."""
    version = templates.get_template_version(store, caller.tenant_id, name, n)
    previews: PreviewCache = request.app.state.previews
    # Versions are immutable, so (tenant, name, number) names one preview forever.
    result = previews.preview_version((caller.tenant_id, name, n), version)
    return Response(result.png, media_type="image/png", headers=result.headers())
