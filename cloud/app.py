"""The cloud's HTTP application: the admin API's routers, the console, health and metrics in one app.

`create_app(store)` gives the FastAPI application `serve` runs. It sits above `cloud.api` and
`cloud.console`, which are siblings that never import each other.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloud.api import (
    access,
    agents,
    alerts,
    exceptions,
    fleet,
    labels,
    orders,
    packers,
    records,
    releases,
    reports,
    rulesets,
    shipping,
    tokens,
    users,
    waves,
    webhooks,
)
from cloud.api.errors import BodyLimitMiddleware, MetricsMiddleware, PathCheckMiddleware
from cloud.console import console_router
from cloud.labels.preview import PreviewCache
from cloud.storage.store import CloudStore
from dockside.http_errors import CatchAllMiddleware, install_error_handlers
from dockside.http_limits import BodyDeadlineMiddleware, HttpLimits

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def create_app(store: CloudStore, limits: HttpLimits | None = None) -> FastAPI:
    """The admin API over `store`: /api/v1/..., /healthz, /metrics and the OpenAPI docs at /docs.

    `limits` bounds how long a request body may take (the defaults when None).
    """
    app = FastAPI(
        title="Dockside cloud admin API",
        version="1",
        summary="Warehouses, stations, label templates, orders and the agent fleet.",
    )
    app.state.store = store
    app.state.previews = PreviewCache()
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        default=DEFAULT_MAX_BODY_BYTES,
        per_path={
            ("POST", "/api/v1/orders"): orders.INGEST_MAX_BODY_BYTES,
            ("POST", "/api/v1/releases"): releases.RELEASE_MAX_BODY_BYTES,
        },
        per_pattern=[
            # One parcel's carrier label: up to MAX_LABEL_BYTES, base64 in JSON.
            ("POST", r"/api/v1/orders/[^/]+/parcels/[^/]+/label", orders.LABEL_MAX_BODY_BYTES),
        ],
    )
    # Outside the size limit, so even draining a refused body is bounded in time.
    app.add_middleware(BodyDeadlineMiddleware, limits=limits or HttpLimits())
    app.add_middleware(PathCheckMiddleware)
    app.add_middleware(CatchAllMiddleware)
    # One router per capability (cloud/api/), then the console beside them.
    for router in (
        fleet.router,
        labels.router,
        orders.router,
        agents.router,
        access.router,
        releases.router,
        rulesets.router,
        waves.router,
        exceptions.router,
        records.router,
        webhooks.router,
        tokens.router,
        users.router,
        alerts.router,
        shipping.router,
        packers.router,
        reports.router,
    ):
        app.include_router(router)
    app.include_router(console_router())

    @app.get("/healthz", summary="Liveness and the current revision")
    async def healthz() -> dict[str, Any]:
        """Answers when the API and its database work."""
        revision = await run_in_threadpool(store.current_revision)
        return {"status": "ok", "revision": revision}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        """The process's metrics in the Prometheus text format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            # The ingest body is read by hand (see cloud.api.orders); document its shape here.
            batch = orders.OrderBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(batch.pop("$defs", {}))
            schemas["OrderBatch"] = batch
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
