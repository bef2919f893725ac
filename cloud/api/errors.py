"""Every admin API failure as the contract's {"error": {"code", "message"}}, never a stack trace.

Handlers cover Dockside's own errors, request validation (422, naming the field), malformed JSON
(400), unknown routes and methods, oversized bodies (413), and a last-resort middleware turns any
other exception into a logged 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud import metrics
from cloud.field_errors import describe_field_errors
from dockside.errors import DocksideError
from dockside.http_limits import BodyReadTimeout

__all__ = [
    "BodyLimitMiddleware",
    "CatchAllMiddleware",
    "MetricsMiddleware",
    "PathCheckMiddleware",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger(__name__)

_DRAIN_BYTES = 256 * 1024 * 1024
# A client that stops sending for this long is not in the middle of writing a body we refused.
_DRAIN_IDLE_S = 1.0
_STATUS_CODES = {
    400: ("bad_request", "the request is malformed: check it against /docs"),
    401: ("unauthenticated", "this call needs a valid bearer token"),
    403: ("forbidden", "this token may not do that: use a token with the right role"),
    404: ("not_found", "there is no such path: see /docs for the API"),
    405: ("method_not_allowed", "this path does not take that method: see /docs for the API"),
    408: ("body_timeout", "the request body did not arrive in time: send it without pauses"),
    413: ("body_too_large", "the request body is too large: send less per call"),
    415: ("unsupported_media_type", "send the body as application/json"),
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A response in the contract's error shape."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _dockside_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DocksideError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return error_response(exc.http_status, exc.code, exc.message, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        detail = (broken.get("ctx") or {}).get("error", "JSON decode error")
        position = broken.get("loc", ("body", "?"))[-1]
        return error_response(
            400,
            "invalid_json",
            f"the body is not valid JSON ({detail} at position {position}): send a JSON object",
        )
    return error_response(422, "invalid_input", describe_field_errors(errors))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, message = _STATUS_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    if exc.status_code == 404:
        message = f"there is no {request.method} {request.url.path[:200]}: see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.url.path[:200]} does not take {request.method}: see /docs for the API"
    elif isinstance(exc, BodyTooLarge):
        message = _too_large(exc.limit)
    elif isinstance(exc, BodyReadTimeout):
        message = exc.message
    return error_response(exc.status_code, code, message, dict(exc.headers) if exc.headers else None)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes: send less per call (split the batch)"


class BodyTooLarge(HTTPException):
    """The body grew past its limit while it was read (no or a false Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body, so the client gets to read our 413.

    A client writes its whole body before it reads the answer; closing on it mid-body makes it
    see a reset instead of the error. Past _DRAIN_BYTES the sender is not worth waiting for, and
    one that pauses for _DRAIN_IDLE_S (or declared a body it never sends) is answered at once.
    """
    drained = 0
    try:
        while drained < _DRAIN_BYTES:
            async with asyncio.timeout(_DRAIN_IDLE_S):
                message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
    except (TimeoutError, BodyReadTimeout):
        return


class BodyLimitMiddleware:
    """Refuses a request body over its path's limit with 413, before or while it is read."""

    def __init__(self, app: ASGIApp, *, default: int, per_path: dict[tuple[str, str], int]) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get((scope["method"], scope["path"].rstrip("/")), self.default)
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _drain(receive)
            response = error_response(413, "body_too_large", _too_large(limit), {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive)
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


_CONTROL_CHARACTERS = frozenset(chr(c) for c in (*range(0x20), 0x7F))


class PathCheckMiddleware:
    """Refuses a URL path holding control characters with 422, before any route reads it.

    No Dockside key (order ref, template name, warehouse code) can hold one, and PostgreSQL
    cannot even compare text with a NUL in it, so such a path is a client error, never a 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _CONTROL_CHARACTERS.isdisjoint(scope["path"]):
            response = error_response(
                422,
                "invalid_path",
                "the URL path holds a control character (such as %00): no Dockside name or "
                "reference contains one; check the reference you sent",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the contract's error shape for every failure FastAPI can route to a handler."""
    app.add_exception_handler(DocksideError, _dockside_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


class CatchAllMiddleware:
    """The last resort: any unexpected exception is logged with an incident id and answered 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            incident = f"{time.time_ns():x}"
            log.exception("%s %s failed (incident %s)", scope.get("method"), scope.get("path"), incident)
            if started:
                raise
            response = error_response(
                500,
                "internal_error",
                f"the server failed on this request (incident {incident}, logged): retry, "
                "and report the incident if it keeps failing",
            )
            await response(scope, receive, send)


class MetricsMiddleware:
    """Counts and times admin API requests by route template (never by raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
            metrics.HTTP_SECONDS.labels(method, template).observe(time.perf_counter() - began)
