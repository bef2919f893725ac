"""The HTTP error contract both Dockside apps answer with: `{"error": {"code", "message"}}`.

The cloud's admin API and the agent's local API install the same handlers with
`install_error_handlers(app)` and the same last-resort `CatchAllMiddleware`, so a client reads
one shape, one set of codes and one wording from either side:

- a `DocksideError` answers with its own `code`, `message` and `http_status` (the status mapping
  of the error tree in `dockside.errors`; a 401 adds `WWW-Authenticate: Bearer`);
- a body that is not JSON is 400 `invalid_json`, a JSON body of the wrong shape 422
  `invalid_input` naming each field (`describe_field_errors`, the one pydantic wording);
- unknown paths, wrong methods and the other standard 4xx answers get a code and a message
  that says what to do (`STATUS_ERRORS`);
- anything unexpected is a logged 500 `internal_error` with an incident id, never a trace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockside.errors import DocksideError, InputError, MalformedJson

__all__ = [
    "STATUS_ERRORS",
    "CatchAllMiddleware",
    "WatchedSend",
    "body_too_large_message",
    "describe_field_errors",
    "error_body",
    "error_response",
    "install_error_handlers",
    "invalid_body",
    "send_error",
]

log = logging.getLogger(__name__)

# The code and message of each standard 4xx answer Starlette raises itself (404 and 405 name
# the path and method when answered, see `_http_error`).
STATUS_ERRORS: Final[Mapping[int, tuple[str, str]]] = {
    400: ("bad_request", "the request is malformed: check it against /docs"),
    401: ("unauthenticated", "this call needs a credential: send a valid bearer token"),
    403: ("forbidden", "this credential may not do that: use one with the right role"),
    404: ("not_found", "there is no such path: see /docs for the API"),
    405: ("method_not_allowed", "this path does not take that method: see /docs for the API"),
    406: ("not_acceptable", "this path cannot answer in the media type asked for: accept application/json"),
    408: ("body_timeout", "the request body did not arrive in time: send it without pauses"),
    413: ("body_too_large", "the request body is too large: send less per call"),
    415: ("unsupported_media_type", "send the body as application/json"),
}

# Shown per answer: the first few problems say what to fix; the rest are only counted.
_FIELDS_SHOWN = 3
# A hostile body can put any key in a location: each part of a field's path is kept short.
_FIELD_PART_CHARS = 64
_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_OBJECT_TYPES = frozenset({"model_type", "model_attributes_type", "dict_type"})
_PROBLEMS: Final[Mapping[str, str]] = {
    "missing": "is missing",
    "extra_forbidden": "is not a field of this request",
    "string_type": "must be a text",
    "string_too_short": "must not be empty",
}


def error_body(code: str, message: str, params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The contract's error body, `{"error": {"code": code, "message": message}}`, with
    `"params"` (the values the message names) when there are any."""
    error: dict[str, Any] = {"code": code, "message": message}
    if params:
        error["params"] = dict(params)
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A response in the contract's error shape."""
    return JSONResponse(error_body(code, message, params), status_code=status, headers=headers)


async def send_error(
    send: Send, status: int, code: str, message: str, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer in the contract's error shape straight on an ASGI `send` (for middlewares)."""
    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def body_too_large_message(limit: int) -> str:
    """What a client whose body passed `limit` bytes is told (413 `body_too_large`)."""
    return f"the request body is larger than {limit:,} bytes: send less per call (split the batch)"


def _field(loc: Sequence[Any], whole: str) -> str:
    parts = [str(part)[:_FIELD_PART_CHARS] for part in loc if part != "body"]
    return ".".join(parts) or whole


def _problem(error: Mapping[str, Any], field: str, *, at_root: bool) -> str:
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    if at_root and kind in _OBJECT_TYPES:
        return f"{field} must be a JSON object"
    if kind in _PROBLEMS:
        return f"{field} {_PROBLEMS[kind]}"
    if kind == "string_too_long":
        return f"{field} is longer than {context.get('max_length')} characters"
    if kind == "string_pattern_mismatch" and context.get("pattern") == _CODE_PATTERN:
        return f"{field} may only hold letters, digits and . _ - (no spaces or symbols)"
    return f"{field}: {error.get('msg', 'is invalid')}"


def describe_field_errors(
    errors: Sequence[Mapping[str, Any]],
    *,
    fix: str = "fix the request and send it again",
    whole: str = "the body",
) -> str:
    """Pydantic's validation errors as one sentence: each field and its problem, then `fix`.

    'order_ref is missing; station must be a text (and 2 more): send a JSON object ...'. A field
    is named by its dotted path (`ship_to.country`), or as `whole` when the value itself is
    wrong; a problem Dockside has words for says it plainly, any other keeps pydantic's message.
    The value sent is never echoed back.
    """
    shown = []
    for error in errors[:_FIELDS_SHOWN]:
        field = _field(error.get("loc", ()), whole)
        shown.append(_problem(error, field, at_root=field == whole))
    more = f" (and {len(errors) - _FIELDS_SHOWN} more)" if len(errors) > _FIELDS_SHOWN else ""
    return f"{'; '.join(shown)}{more}: {fix}"


def invalid_body(errors: Sequence[Mapping[str, Any]], *, expected: str = "a JSON object") -> InputError:
    """The error for a request body that failed validation: not JSON (400) or the wrong shape (422).

    `expected` says what the body should be, in the client's terms ("a JSON object with order_ref,
    station and request_id").
    """
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is None:
        return InputError(describe_field_errors(errors, fix=f"send {expected}"), code="invalid_input")
    detail = (broken.get("ctx") or {}).get("error", "JSON decode error")
    loc = broken.get("loc") or ()
    # FastAPI puts the offset where parsing stopped last in the location; pydantic alone does not.
    where = f" at position {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
    return MalformedJson(
        f"the body is not valid JSON ({detail}{where}): send {expected} with content-type application/json"
    )


async def _dockside_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DocksideError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return error_response(exc.http_status, exc.code, exc.message, headers, exc.params)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return await _dockside_error(request, invalid_body(errors))
    return error_response(422, "invalid_input", describe_field_errors(errors))


def _phrase(status: int) -> str:
    """Starlette's detail for an HTTPException raised without words of its own."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code, message = STATUS_ERRORS.get(exc.status_code, ("http_error", str(exc.detail)))
    path = request.url.path[:200]
    if exc.status_code == 404:
        message = f"there is no {request.method} {path}: see /docs for the API"
    elif exc.status_code == 405:
        message = f"{path} does not take {request.method}: see /docs for the API"
    elif exc.detail != _phrase(exc.status_code):
        # Raised with its own words (a body that stalled, one over its path's limit): keep them.
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, dict(exc.headers) if exc.headers else None)


def install_error_handlers(app: FastAPI) -> None:
    """Register the contract's error shape for every failure FastAPI routes to a handler."""
    app.add_exception_handler(DocksideError, _dockside_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)


class WatchedSend:
    """An ASGI `send` that remembers whether the response has started.

    Once its head is out, an error can no longer be answered in the contract's shape: the
    middleware that caught it must let the connection break instead.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class CatchAllMiddleware:
    """The last resort: any unexpected exception is logged with an incident id and answered 500.

    Outermost in both apps, so a crash in another middleware is still a clean answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception:
            incident = f"{time.time_ns():x}"
            log.exception("%s %s failed (incident %s)", scope.get("method"), scope.get("path"), incident)
            if watched.started:
                raise
            await send_error(
                send,
                500,
                "internal_error",
                f"the server failed on this request (incident {incident}, logged): retry, "
                "and report the incident if it keeps failing",
            )
