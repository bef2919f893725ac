"""The agent's local HTTP API (FastAPI), for the station page and a WMS on the same PC.

Every request passes `edge_agent.http.local_access` first (Host, Origin, credential, Content-Type).
Every error is the contract's `{"error": {"code", "message"}}`, answered by the handlers the
cloud uses too (`dockside.http_errors`): malformed JSON is 400 `invalid_json`, a missing or wrong
field is 422 naming the field, a scan the agent's `ScanReader` ([scanner]) reads no order
reference from (a pack's `order_ref`, an order read's path) is 422 `scan_unreadable`, a body
over the limit is 413, a Dockside error carries its own status, and anything unexpected is a 500
without a trace.

The pack endpoint parses its body itself (one pydantic-core JSON validation, no dependency
injection) and returns pre-serialised JSON: the HTTP layer is most of the pack path's budget.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from dockside.errors import DocksideError, InputError, NotFound
from dockside.http_errors import (
    CatchAllMiddleware,
    WatchedSend,
    body_too_large_message,
    install_error_handlers,
    invalid_body,
    send_error,
)
from dockside.http_limits import BodyDeadlineMiddleware, HttpLimits
from dockside.shipping.parcels import MAX_PARCELS
from edge_agent import __version__
from edge_agent.agent import Agent
from edge_agent.http.local_access import AccessPolicy, LocalAccessGuard
from edge_agent.http.local_credentials import LocalCredentials
from edge_agent.http.station_devices_api import station_devices_router
from edge_agent.http.station_pairing_api import station_pairing_router
from edge_agent.http.web import station_page_router
from edge_agent.packing.waves import WavePrinter, wave_number

__all__ = [
    "MAX_BODY_BYTES",
    "CloseOrderRequest",
    "HandoverRequest",
    "PackRequest",
    "PrintWaveRequest",
    "ReprintRequest",
    "RequestGuard",
    "TooManyWaiters",
    "VoidParcelRequest",
    "create_app",
]

MAX_BODY_BYTES = 64 * 1024

# An order reference as the station's scanner typed it: the agent's `ScanReader` ([scanner])
# reads it to the reference, or refuses it 422 `scan_unreadable` (too long, garbage, no order AI).
Scan = Annotated[str, StringConstraints(min_length=1)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
# Client-chosen: a UUID, a timestamp, a scanner's counter ... printable ASCII, no spaces.
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
# Strict: "2", 2.0 and true are not parcel numbers or millimetres.
ParcelNumber = Annotated[int, Field(ge=1, le=MAX_PARCELS, strict=True)]
Millimetres = Annotated[int, Field(ge=1, le=5_000, strict=True)]

M = TypeVar("M", bound=BaseModel)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PackRequest(BaseModel):
    """`POST /api/v1/pack`: which order (as scanned: a plain reference, with the scanner's prefix or
    suffix, or a GS1 code) and parcel, at which station, under which client request id; the
    parcel's dimensions when the station knows them (else the order's for that parcel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_ref: Scan
    station: Code
    request_id: RequestId
    parcel: ParcelNumber = 1
    dimensions_mm: tuple[Millimetres, Millimetres, Millimetres] | None = None


class CloseOrderRequest(BaseModel):
    """`POST /api/v1/orders/{order_ref}/close`: why the order ships with the parcels labelled so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class ReprintRequest(BaseModel):
    """`POST /api/v1/jobs/{job_id}/reprint`: why the label is printed again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, StringConstraints(max_length=500)]
    request_id: RequestId | None = None


class VoidParcelRequest(BaseModel):
    """`POST /api/v1/orders/{order_ref}/parcels/{n}/void`: why the parcel's label is voided."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class HandoverRequest(BaseModel):
    """`POST /api/v1/handover`: a dock station's scan of a parcel's label (tracking number or SSCC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # As scanned: the agent strips spaces, a GS1 symbology identifier and AI (00) itself.
    scan: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    station: Code
    request_id: RequestId


class PrintWaveRequest(BaseModel):
    """`POST /api/v1/waves/{wave_id}/print`: at which station, under which client request id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    station: Code
    request_id: RequestId


# `GET /api/v1/jobs/{id}?wait_s=`: how long one request may wait, and how many may wait at once.
MAX_JOB_WAIT_S = 30.0
MAX_JOB_WAITERS = 64


class TooManyWaiters(DocksideError):
    """Too many requests wait for their jobs at once (429): the page asks again a moment later."""

    http_status = 429


def _wait_seconds(values: list[str]) -> float:
    """A job read's `wait_s`: 0 when absent, else seconds above 0 up to MAX_JOB_WAIT_S (422 otherwise)."""
    if not values:
        return 0.0
    text = values[0]
    try:
        wait_s = float(text) if len(values) == 1 and len(text) <= 16 else -1.0
    except ValueError:
        wait_s = -1.0
    if not 0 < wait_s <= MAX_JOB_WAIT_S:  # also refuses nan and inf
        raise InputError(
            f"wait_s must be a number of seconds above 0 and at most {MAX_JOB_WAIT_S:g}, given once "
            f"(got {text[:20]!r}): for example ?wait_s=10",
            code="invalid_wait",
        )
    return wait_s


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
    )


async def _parse(request: Request, model: type[M], expected: str) -> M:
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_body(exc.errors(include_url=False, include_input=False), expected=expected) from None


class RequestGuard:
    """Pure ASGI middleware: bounds request bodies (413), declared or as they are read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await send_error(send, 413, "body_too_large", body_too_large_message(limit))
                    return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        watched = WatchedSend(send)
        try:
            await self.app(scope, bounded_receive, watched)
        except _BodyTooLarge:
            if not watched.started:
                await send_error(send, 413, "body_too_large", body_too_large_message(limit))


class _BodyTooLarge(Exception):
    pass


def create_app(
    agent: Agent,
    credentials: LocalCredentials,
    policy: AccessPolicy | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    limits: HttpLimits | None = None,
) -> FastAPI:
    """The local API of `agent` (whose loop must be the one the server runs on), behind its boundary.

    `credentials` and `policy` are what `LocalAccessGuard` checks every request against.
    """
    app = FastAPI(
        title="Dockside agent",
        version=__version__,
        description="The station API of a Dockside edge agent: pack, jobs, reprint, waves, status.",
    )
    packer = agent.packer
    scans = agent.settings.scan_reader
    pack_seconds = agent.metrics.pack_seconds

    install_error_handlers(app)

    pack_body = {"order_ref": "DEMO-0001", "station": "S1", "request_id": "client-chosen id", "parcel": 1}

    @app.post(
        "/api/v1/pack",
        summary="Pack an order: weigh, decide, print its label",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": PackRequest.model_json_schema(), "example": pack_body}
                },
            }
        },
    )
    async def pack(request: Request) -> Response:
        started = time.perf_counter()
        outcome = "error"
        try:
            body = await _parse(
                request,
                PackRequest,
                "a JSON object with order_ref, station and request_id (and optionally parcel, 1 to "
                f"{MAX_PARCELS}, and dimensions_mm, [length, width, height] in whole millimetres)",
            )
            answer = await packer.pack(
                scans.order_ref(body.order_ref),
                body.station,
                body.request_id,
                parcel=body.parcel,
                dimensions_mm=body.dimensions_mm,
            )
            outcome = answer.status
            # A held label is accepted, not printed yet: it goes out once its printer is ready.
            return _json(answer.to_json(), 202 if outcome == "held" else 200)
        finally:
            pack_seconds.labels(outcome=outcome).observe(time.perf_counter() - started)

    @app.get("/api/v1/jobs/{job_id}", summary="A print job (`?wait_s=`: once its printer confirmed it)")
    async def job(job_id: str, request: Request) -> Response:
        wait_s = _wait_seconds(request.query_params.getlist("wait_s"))
        if len(job_id) > 64:
            found = None
        elif wait_s and agent.queue.job_waiters < MAX_JOB_WAITERS:
            found = await agent.queue.wait_settled(job_id, wait_s)
        elif wait_s:
            raise TooManyWaiters(
                f"{agent.queue.job_waiters} requests already wait for their jobs at this agent: "
                "ask again in a second",
                code="too_many_waiters",
            )
        else:
            found = agent.queue.jobs.get(job_id)
        if found is None:
            raise NotFound(
                f"job {job_id[:64]} does not exist at this agent: check the job id", code="job_not_found"
            )
        return _json(found.details())

    @app.get(
        "/api/v1/requests/{request_id}/job",
        summary="The job a pack's request id made, once its printer had its say (`?wait_s=`)",
    )
    async def request_job(request_id: str, request: Request) -> Response:
        # The station page asks this alongside its pack, so it hears the confirmation without a
        # request after the answer; the job may not exist yet when this arrives.
        wait_s = _wait_seconds(request.query_params.getlist("wait_s"))
        if len(request_id) > 64:
            found = None
        elif wait_s and agent.queue.job_waiters >= MAX_JOB_WAITERS:
            raise TooManyWaiters(
                f"{agent.queue.job_waiters} requests already wait for their jobs at this agent: "
                "ask again in a second",
                code="too_many_waiters",
            )
        elif wait_s:
            found = await agent.queue.wait_settled_request(request_id, wait_s)
        else:
            found = agent.queue.jobs.by_request(request_id)
        if found is None:
            raise NotFound(
                f"request {request_id[:64]} made no job at this agent (yet): check the request id",
                code="job_not_found",
            )
        return _json(found.details())

    @app.post(
        "/api/v1/jobs/{job_id}/reprint",
        summary="Print a job's label again, on purpose, with a reason",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ReprintRequest.model_json_schema()}},
            }
        },
    )
    async def reprint(job_id: str, request: Request) -> Response:
        body = await _parse(request, ReprintRequest, 'a JSON object like {"reason": "label torn"}')
        if len(job_id) > 64:
            raise NotFound("that job id is too long to exist: check the job id", code="job_not_found")
        answer = await packer.reprints.reprint(job_id, body.reason, body.request_id)
        return _json(answer.to_json(), 202 if answer.status == "held" else 200)

    @app.get("/api/v1/orders/{order_ref}", summary="An order as this agent's cache holds it")
    async def order(order_ref: str) -> Response:
        # As scanned, like the pack: a GS1 code or a prefixed scan (percent-encoded in the path)
        # names its order; a scan naming none is 422 `scan_unreadable`.
        order_ref = scans.order_ref(order_ref)
        cached = agent.cache.order(order_ref)
        if cached is None:
            raise NotFound(
                f"order {order_ref} is not in this agent's cache: check the scanned barcode, or wait a "
                "moment for the agent to sync from the cloud and scan again",
                code="order_not_found",
                params={"order_ref": order_ref},
            )
        jobs = agent.queue.jobs
        first = jobs.first_for_order(order_ref)
        labelled = [jobs.first_for_parcel(order_ref, n) for n in jobs.parcels_labelled(order_ref)]
        return _json(
            {
                "order_ref": cached.order.order_ref,
                "state": cached.state,
                "order": cached.sync_body(),
                "job": first.answer().to_json() if first else None,
                "parcels": [job.answer().to_json() for job in labelled if job is not None],
                # How many parcels the OMS expects (None when it did not say: one, or as packed).
                "expected_parcels": len(cached.order.parcels) or None,
                # The packer closed it here: no further parcel gets a label.
                "closed": packer.parcels.closed(order_ref) is not None,
            }
        )

    @app.post(
        "/api/v1/orders/{order_ref}/close",
        summary="End an order with the parcels labelled so far (fewer than the OMS expected)",
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": CloseOrderRequest.model_json_schema()}},
            }
        },
    )
    async def close_order(order_ref: str, request: Request) -> Response:
        raw = await request.body()
        body = (
            await _parse(request, CloseOrderRequest, 'a JSON object like {"reason": "one carton short"}')
            if raw.strip()
            else CloseOrderRequest()
        )
        if len(order_ref) > 64:
            raise NotFound("that order reference is too long to exist: check it", code="order_not_found")
        return _json(await packer.parcels.close(order_ref, body.reason))

    @app.post(
        "/api/v1/orders/{order_ref}/parcels/{parcel}/void",
        summary="Void a parcel's shipping label (its tracking number is never used again)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": VoidParcelRequest.model_json_schema()}},
            }
        },
    )
    async def void_parcel(order_ref: str, parcel: str, request: Request) -> Response:
        body = await _parse(request, VoidParcelRequest, 'a JSON object like {"reason": "address changed"}')
        if len(order_ref) > 64:
            raise NotFound("that order reference is too long to exist: check it", code="order_not_found")
        if not parcel.isascii() or not parcel.isdigit() or not 1 <= int(parcel[:4]) <= MAX_PARCELS:
            raise NotFound(
                f"there is no parcel {parcel[:8]!r}: parcels are numbered 1 to {MAX_PARCELS}",
                code="parcel_not_found",
            )
        return _json(await packer.parcels.void_parcel(order_ref, int(parcel), body.reason))

    @app.post(
        "/api/v1/handover",
        summary="Dock: hand a parcel over to its carrier by scanning its label",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": HandoverRequest.model_json_schema()}},
            }
        },
    )
    async def handover(request: Request) -> Response:
        body = await _parse(
            request,
            HandoverRequest,
            "a JSON object with scan (the label's tracking number), station and request_id",
        )
        return _json(packer.parcels.hand_over(body.scan, body.station, body.request_id))

    waves = WavePrinter(
        agent.store,
        agent.cache,
        agent.floor,
        agent.queue,
        agent.labeller,
        agent.outbox,
        agent.metrics,
    )
    app.state.waves = waves

    @app.get("/api/v1/waves", summary="The waves released to this agent's stations, newest first")
    async def list_waves(station: str | None = None) -> Response:
        if station is not None and (not station or len(station) > 32):
            raise InputError("station must be a station code of 1 to 32 characters", code="invalid_input")
        return _json({"waves": waves.waves(station)})

    @app.get("/api/v1/waves/{wave_id}", summary="A wave: its progress and each order's label")
    async def wave(wave_id: str) -> Response:
        return _json(waves.describe(wave_number(wave_id)))

    @app.post(
        "/api/v1/waves/{wave_id}/print",
        summary="Print every label of a wave, in order, once (the weight printed is the expected one)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PrintWaveRequest.model_json_schema()}},
            }
        },
    )
    async def print_wave(wave_id: str, request: Request) -> Response:
        body = await _parse(request, PrintWaveRequest, "a JSON object with station and request_id")
        return _json(await waves.print_wave(wave_number(wave_id), body.station, body.request_id))

    @app.get("/api/v1/status", summary="Agent, cloud link, outbox and stations")
    async def status() -> Response:
        # How many leased tracking numbers this agent can still print, per carrier (offline too).
        return _json({**agent.status(), "tracking_numbers": agent.queue.numbers.status()})

    app.include_router(station_devices_router(agent.floor))

    @app.get("/healthz", summary="Liveness and the running version (open: no credential)")
    async def healthz() -> Response:
        return _json({"status": "ok", "version": __version__})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(agent.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(station_page_router(agent, credentials))
    app.include_router(station_pairing_router(credentials))

    # A body that stalls is answered 408 instead of holding its request for ever (innermost: the
    # route's own read raises, and the exception handler above answers in the contract's shape).
    app.add_middleware(BodyDeadlineMiddleware, limits=limits or HttpLimits())
    app.add_middleware(LocalAccessGuard, credentials=credentials, policy=policy or AccessPolicy())
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    # Added last, so it runs outermost: a crash in a check or a bound is still a clean 500.
    app.add_middleware(CatchAllMiddleware)
    return app
