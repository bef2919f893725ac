"""The admin API's own guards around the shared error contract (`dockside.http_errors`).

The handlers, the error body and its wording are `dockside.http_errors`, shared with the agent's
local API. What only the cloud needs stays here: a body limit per path that drains a refused body
so the client reads its 413 (an OMS writes a whole batch before it reads the answer), the check
that refuses control characters in a URL path (422), and the request metrics by route template.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud import metrics
from dockside.http_errors import body_too_large_message, error_response
from dockside.http_limits import BodyReadTimeout

__all__ = ["BodyLimitMiddleware", "MetricsMiddleware", "PathCheckMiddleware"]

_DRAIN_BYTES = 256 * 1024 * 1024
# A client that stops sending for this long is not in the middle of writing a body we refused.
_DRAIN_IDLE_S = 1.0


class _BodyTooLarge(HTTPException):
    """The body grew past its limit while it was read (no or a false Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=body_too_large_message(limit))
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
    """Refuses a request body over its path's limit with 413, before or while it is read.

    `per_path` names exact (method, path) pairs; `per_pattern` (method, regex, limit) covers a
    route with path parameters, such as one parcel's carrier label. The regex must match the
    whole path (without a trailing slash); exact paths are looked at first.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        per_path: dict[tuple[str, str], int],
        per_pattern: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path
        self.per_pattern = [(method, re.compile(pattern), limit) for method, pattern, limit in per_pattern]

    def _limit(self, method: str, path: str) -> int:
        path = path.rstrip("/")
        found = self.per_path.get((method, path))
        if found is not None:
            return found
        for wanted, pattern, limit in self.per_pattern:
            if wanted == method and pattern.fullmatch(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["method"], scope["path"])
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _drain(receive)
            response = error_response(
                413, "body_too_large", body_too_large_message(limit), {"Connection": "close"}
            )
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
                    raise _BodyTooLarge(limit)
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
