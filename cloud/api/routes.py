"""The admin API's calls under /api/v1 (README "Cloud admin API"), each for one tenant's principal.

Each handler names the permission it needs (`cloud.access.roles`) and filters by the caller's warehouses.

Handlers that touch the database are plain functions, which FastAPI runs in its worker threads;
order ingest reads its raw body itself, counting it as it arrives (`cloud.api.order_batch`), so
one bad order cannot fail the whole batch and a hostile one is refused before it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud import metrics
from cloud.access.principals import Principal
from cloud.access.roles import Forbidden, require_warehouse
from cloud.api import order_batch
from cloud.api.callers import (
    Caller,
    EditsTemplates,
    EnrollsAgents,
    IngestsOrders,
    ReadsOrders,
    ReadsSetup,
    Store,
    WritesStations,
    WritesWarehouses,
)
from cloud.api.order_batch import BatchScan, InvalidJson
from cloud.field_errors import describe_field_errors
from cloud.fleet import agents, warehouses
from cloud.labels import rollout as template_rollout
from cloud.labels import templates
from cloud.labels.preview import PreviewCache
from cloud.orders import ingest as orders
from cloud.records import audit
from cloud.storage.gc_pause import paused_gc
from cloud.storage.store import CloudStore
from dockside.errors import InputError, NotFound
from dockside.orders import Order

__all__ = ["INGEST_MAX_BODY_BYTES", "OrderBatch", "router"]

INGEST_MAX_BODY_BYTES = 32 * 1024 * 1024

WarehouseCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
TemplateName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


class OrderBatch(BaseModel):
    """The ingest body: up to 10,000 orders (documentation; each order is validated on its own)."""

    model_config = ConfigDict(extra="forbid")

    orders: Annotated[list[Order], Field(max_length=orders.MAX_ORDERS_PER_CALL)]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[Any]


router = APIRouter(prefix="/api/v1")


def _or_none(read: Callable[[], Any]) -> Any:
    """What `read` returns, or None when the object does not exist yet."""
    try:
        return read()
    except NotFound:
        return None


def _active_version(versions: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    """{"active_version": n or None} for the audit log's before and after."""
    found = _or_none(versions) or []
    return {"active_version": next((v["version"] for v in found if v.get("active")), None)}


def _created(body: Any, created: bool, response: Response) -> Any:
    response.status_code = 201 if created else 200
    return body


@router.post("/warehouses", status_code=201, summary="Create or replace a warehouse")
def put_warehouse(
    body: warehouses.WarehouseIn, caller: WritesWarehouses, store: Store, response: Response
) -> Any:
    """Create a warehouse (201) or replace one with the same code (200); synced to its agents."""
    if not caller.sees(body.code):
        raise Forbidden(
            f"this token is limited to warehouses {', '.join(sorted(caller.warehouses or ()))}: "
            f"use a token for warehouse {body.code!r} or the whole tenant"
        )
    with store.unit_of_work():
        before = _or_none(lambda: warehouses.get_warehouse(store, caller.tenant_id, body.code))
        saved, created = warehouses.put_warehouse(store, caller.tenant_id, body)
        audit.record(store, caller, "put_warehouse", "warehouse", body.code, before, saved)
    return _created(saved, created, response)


@router.get("/warehouses", summary="List warehouses")
def list_warehouses(caller: ReadsSetup, store: Store) -> Any:
    """Every warehouse of the caller's tenant that the caller's scope covers."""
    found = warehouses.list_warehouses(store, caller.tenant_id)
    return {"warehouses": [warehouse for warehouse in found if caller.sees(warehouse["code"])]}


@router.get("/warehouses/{wh}", summary="One warehouse with its stations")
def get_warehouse(wh: WarehouseCode, caller: ReadsSetup, store: Store) -> Any:
    """A warehouse and its stations."""
    return warehouses.get_warehouse(store, caller.tenant_id, require_warehouse(caller, wh))


@router.post("/warehouses/{wh}/stations", status_code=201, summary="Create or replace a station")
def put_station(
    wh: WarehouseCode, body: warehouses.StationIn, caller: WritesStations, store: Store, response: Response
) -> Any:
    """Create a packing station (201) or replace one with the same code (200); synced to agents."""
    existing = warehouses.list_stations(store, caller.tenant_id, require_warehouse(caller, wh))
    before = next((station for station in existing if station.get("code") == body.code), None)
    with store.unit_of_work():
        saved, created = warehouses.put_station(store, caller.tenant_id, wh, body)
        audit.record(store, caller, "put_station", "station", f"{wh}/{body.code}", before, saved)
    return _created(saved, created, response)


@router.get("/warehouses/{wh}/stations", summary="List a warehouse's stations")
def list_stations(wh: WarehouseCode, caller: ReadsSetup, store: Store) -> Any:
    """The stations of one warehouse."""
    return {"stations": warehouses.list_stations(store, caller.tenant_id, require_warehouse(caller, wh))}


@router.post(
    "/warehouses/{wh}/enrollment-tokens", status_code=201, summary="Create a one-time enrollment token"
)
def create_enrollment_token(
    wh: WarehouseCode, caller: EnrollsAgents, store: Store, body: warehouses.EnrollmentTokenIn | None = None
) -> Any:
    """A token an agent trades once, before it expires, for its identity in this warehouse."""
    ttl_s = body.ttl_s if body is not None else warehouses.EnrollmentTokenIn().ttl_s
    code = require_warehouse(caller, wh)
    with store.unit_of_work():
        made = warehouses.create_enrollment_token(store, caller.tenant_id, code, ttl_s)
        # The token itself is a secret: the log keeps only that one was made, and until when.
        after = {key: value for key, value in made.items() if key != "token"}
        audit.record(store, caller, "create_enrollment_token", "warehouse", wh, None, after)
    return made


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
        before = _or_none(lambda: template_rollout.rollout_status(store, caller.tenant_id, name))
        with store.unit_of_work():
            status = template_rollout.publish_to_warehouses(store, caller.tenant_id, name, n, codes)
            audit.record(store, caller, "publish_template_to_warehouses", "template", name, before, status)
        return status
    if caller.warehouses is not None:
        raise Forbidden(
            f"this token is limited to warehouses {', '.join(sorted(caller.warehouses))}: "
            'publish to them with {"warehouses": [...]}, or use a token for the whole tenant'
        )
    before = _active_version(lambda: templates.list_template_versions(store, caller.tenant_id, name))
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


_BATCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderBatch"}}},
    }
}


@router.post("/orders", summary="Ingest orders in bulk", openapi_extra=_BATCH_DOC)
async def ingest_orders(request: Request, caller: IngestsOrders, store: Store) -> JSONResponse:
    """Store up to 10,000 orders, idempotent by order_ref; each bad order is reported on its own."""
    with order_batch.BUFFERS.holding() as share:
        raw = await _read_batch(request, share)
        async with order_batch.parsing():
            result = await run_in_threadpool(_ingest, store, caller, raw)
    return JSONResponse(result.to_dict())


async def _read_batch(request: Request, share: order_batch.BodyShare) -> bytearray:
    """The body, refused while it arrives once it holds too many orders or values (see order_batch)."""
    raw = bytearray()
    scan = BatchScan()
    async for chunk in request.stream():
        share.add(len(chunk))
        raw += chunk
        if scan.exact:
            # Event by event costs milliseconds per chunk: keep it off the event loop.
            await run_in_threadpool(scan.feed, chunk, raw)
        else:
            scan.feed(chunk, raw)
    if scan.exact:
        await run_in_threadpool(scan.finish)
    return raw


def _ingest(store: CloudStore, caller: Principal, raw: bytearray) -> orders.IngestResult:
    with paused_gc():
        return _parse_and_ingest(store, caller, raw)


def _parse_and_ingest(store: CloudStore, caller: Principal, raw: bytearray) -> orders.IngestResult:
    try:
        document = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise InvalidJson(f'the body is not valid JSON ({exc}): send {{"orders": [...]}}') from None
    try:
        envelope = _Envelope.model_validate(document)
    except ValidationError as exc:
        raise InputError(describe_field_errors(exc.errors(include_url=False, include_input=False))) from None
    if len(envelope.orders) > orders.MAX_ORDERS_PER_CALL:
        raise InputError(
            f"a call takes at most {orders.MAX_ORDERS_PER_CALL:,} orders (got {len(envelope.orders):,}): "
            "split the batch into several calls",
            code="too_many_orders",
        )
    with store.unit_of_work():
        result = orders.ingest_orders(
            store,
            caller.tenant_id,
            envelope.orders,
            warehouses=caller.warehouses,
            by=caller.token_name,
            actor=caller.actor,
        )
        audit.record_many(
            store,
            caller,
            "amend_order",
            "order",
            [(change.order_ref, change.warehouse, change.before, change.after) for change in result.amended],
        )
        if result.changed:
            summary = {
                "accepted": len(result.accepted),
                "errors": len(result.errors),
                "changed": result.changed,
            }
            audit.record(store, caller, "ingest_orders", "orders", "ingest", None, summary)
    metrics.ORDERS_INGESTED.labels("accepted").inc(len(result.accepted))
    metrics.ORDERS_INGESTED.labels("error").inc(len(result.errors))
    metrics.ORDERS_CHANGED.inc(result.changed)
    return result


@router.get("/orders/{order_ref}", summary="One order with its state and events")
def get_order(
    order_ref: Annotated[str, Path(min_length=1, max_length=64)], caller: ReadsOrders, store: Store
) -> Any:
    """The order as ingested plus `state`, `created_at`, `updated_at` and `events` in time order."""
    return orders.get_order(store, caller.tenant_id, order_ref, warehouses=caller.warehouses)


@router.get("/agents", summary="The fleet of agents")
def list_agents(caller: ReadsSetup, store: Store) -> Any:
    """Each agent's id, warehouse, last seen, version, revision, outbox depth and devices."""
    fleet = agents.list_agents(store, caller.tenant_id)
    return {"agents": [agent for agent in fleet if caller.sees(agent["warehouse"])]}


@router.get("/me", summary="Who the caller is")
def me(caller: Caller) -> Any:
    """The caller's role, tenant, warehouse scope (null: every warehouse) and token name."""
    return {
        "role": caller.role.value,
        "tenant": caller.tenant,
        "warehouses": sorted(caller.warehouses) if caller.warehouses is not None else None,
        "name": caller.token_name,
    }
