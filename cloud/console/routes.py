"""Routes of the admin console: its static files, and the template list its first page needs.

The console is plain HTML, CSS and ES modules calling the same admin API, with the same bearer
token and scopes, as every other client: what a role may not do, its buttons do not show, and
the API refuses it anyway.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from cloud.access.callers import ReadsSetup, Store
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import NotFound

__all__ = ["console_router"]

_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}


def _read(name: str) -> bytes:
    return resources.files("cloud.console").joinpath("static", name).read_bytes()


def _template_summaries(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """Each template name of the tenant with its number of versions and its active version."""
    table = schema.template_versions
    with store.read() as conn:
        counts = conn.execute(
            select(table.c.name, func.count(), func.max(table.c.version), func.max(table.c.created_at))
            .where(table.c.tenant_id == tenant_id)
            .group_by(table.c.name)
            .order_by(table.c.name)
        ).all()
        active = dict(
            conn.execute(
                select(table.c.name, table.c.version).where(
                    table.c.tenant_id == tenant_id, table.c.active.is_(True)
                )
            ).all()
        )
    return [
        {
            "name": name,
            "versions": count,
            "latest": latest,
            "active": active.get(name),
            "updated_at": updated.isoformat() if updated else None,
        }
        for name, count, latest, updated in counts
    ]


def console_router() -> APIRouter:
    """The console's pages at /console/ and `GET /api/v1/templates`."""
    router = APIRouter()
    files = {name: (_read(name), media) for name, media in _STATIC.items()}

    @router.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @router.get("/console", include_in_schema=False)
    async def console_bare() -> RedirectResponse:
        return RedirectResponse("/console/")

    @router.get("/console/", include_in_schema=False)
    async def console_page() -> Response:
        body, media = files["index.html"]
        return Response(body, media_type=media, headers={"cache-control": "no-cache"})

    @router.get("/console/{name}", include_in_schema=False)
    async def console_file(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFound(f"the console has no file {name[:64]}: open /console/", code="not_found")
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})

    # Kept out of the OpenAPI document until the role matrix test (tests/cloud/access/test_roles.py) lists
    # it; it is guarded like every setup read (viewer and up, ReadsSetup).
    @router.get(
        "/api/v1/templates",
        summary="Label templates: names, version counts, active versions",
        include_in_schema=False,
    )
    async def list_templates(caller: ReadsSetup, store: Store) -> Any:
        """Every template of the caller's tenant with how many versions it has and which is active."""
        return {"templates": await run_in_threadpool(_template_summaries, store, caller.tenant_id)}

    return router
