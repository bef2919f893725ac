"""How long and how many: the time an HTTP client gets to send its request, and the connections it may hold.

Both HTTP apps (the cloud's admin API, the agent's local API) run uvicorn with httptools. uvicorn
itself only bounds the idle time between two requests of a keep-alive connection: a client that
connects and sends nothing, dribbles its headers a byte at a time (slowloris), or declares a body
and never sends it holds its connection, and for a body also a request task, for ever. So:

- `bounded_protocol(limits)`: uvicorn's httptools protocol with a deadline for the request head
  (request line and headers, `header_timeout_s` from the connection's first byte or from the end
  of the previous response) answered `408 request_timeout` and closed, and a connection limit:
  a connection past `max_connections` is answered `503 server_busy` and closed at once, before
  it costs a request task. A request answered before its body was read gets
  `body_idle_timeout_s` to send the rest (so the client reads the answer, not a reset), then its
  connection is closed; uvicorn alone would wait for ever as long as bytes kept coming.
- `BodyDeadlineMiddleware`: every read of a request body waits at most `body_idle_timeout_s`, and
  the whole body must keep up `body_min_rate` bytes per second after a `body_grace_s` start;
  otherwise `408 body_timeout` with `Connection: close`.

What uvicorn already has (`timeout_keep_alive`) is set from the same `HttpLimits`.
The helpers touch only the transport and the ASGI callables they are handed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dockside.http_errors import error_body

__all__ = [
    "BodyDeadlineMiddleware",
    "BodyReadTimeout",
    "BoundedHttpToolsProtocol",
    "HttpLimits",
    "bounded_protocol",
    "raw_error_response",
]

_ENV = {
    "header_timeout_s": "DOCKSIDE_HTTP_HEADER_TIMEOUT_S",
    "body_idle_timeout_s": "DOCKSIDE_HTTP_BODY_TIMEOUT_S",
    "max_connections": "DOCKSIDE_HTTP_MAX_CONNECTIONS",
}


@dataclass(frozen=True)
class HttpLimits:
    """The time and connection bounds of one HTTP server (README "Limits")."""

    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 10.0
    # After the grace period a body must average this rate: a 32 MiB batch at 64 KiB/s needs
    # about 9 minutes, far slower than any OMS link, far faster than a drip-feeding attacker.
    body_min_rate: int = 64 * 1024
    body_grace_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 2000

    def __post_init__(self) -> None:
        if min(self.header_timeout_s, self.body_idle_timeout_s, self.body_grace_s, self.keep_alive_s) <= 0:
            raise ValueError("HTTP timeouts must be positive numbers of seconds")
        if self.body_min_rate < 1 or self.max_connections < 1:
            raise ValueError("the body rate and the connection limit must be at least 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpLimits:
        """The defaults, with DOCKSIDE_HTTP_HEADER_TIMEOUT_S, _BODY_TIMEOUT_S, _MAX_CONNECTIONS applied."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, variable in _ENV.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                values[field_name] = int(text) if field_name == "max_connections" else float(text)
            except ValueError:
                raise ValueError(f"${variable} is {text!r}: set it to a number") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{exc} (check {', '.join('$' + v for v in _ENV.values())})") from None


def raw_error_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the contract's error shape that closes the connection."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-head deadline and a connection limit."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(
                raw_error_response(
                    503,
                    "Service Unavailable",
                    "server_busy",
                    f"the server has {self.limits.max_connections:,} connections open: retry in a moment",
                )
            )
            transport.close()
            return
        self._arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            # Answered before the body was read (refused, or not needed). Let the client finish
            # sending, so it reads the answer rather than a reset, but not for ever: each byte
            # it sends would otherwise push uvicorn's keep-alive timer back again.
            self._lingering = self.loop.call_later(self.limits.body_idle_timeout_s, self.transport.close)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._lingering is not None:
            # The rest of an answered request's body is in: an idle keep-alive connection now.
            self._lingering.cancel()
            self._lingering = None
            if self.timeout_keep_alive_task is None and not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head is late while an earlier request still runs: finish that one, then close.
            self.cycle.keep_alive = False
            return
        self.transport.write(
            raw_error_response(
                408,
                "Request Timeout",
                "request_timeout",
                f"the request line and headers did not arrive within {self.limits.header_timeout_s:g} s: "
                "send the whole request head at once",
            )
        )
        self.transport.close()


def bounded_protocol(limits: HttpLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to give `uvicorn.Config(http=...)` for these limits."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


class BodyReadTimeout(HTTPException):
    """A request body stalled or arrived too slowly; answered 408 and the connection closed."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=408, detail=message, headers={"Connection": "close"})
        self.message = message


class BodyDeadlineMiddleware:
    """Bounds each read of a request body in time, and the whole body in average rate."""

    def __init__(self, app: ASGIApp, *, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        began = loop.time()
        limits = self.limits
        received = 0
        body_done = False
        response_started = False

        async def timed_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body, a read waits for the client to hang up: that may take any time.
                return await receive()
            allowance = began + limits.body_grace_s + received / limits.body_min_rate - loop.time()
            wait = max(0.0, min(limits.body_idle_timeout_s, allowance))
            try:
                async with asyncio.timeout(wait):
                    message = await receive()
            except TimeoutError:
                stalled = wait >= limits.body_idle_timeout_s
                raise BodyReadTimeout(
                    f"no request body arrived for {limits.body_idle_timeout_s:g} s: send the whole body "
                    "without pauses"
                    if stalled
                    else f"the request body arrived slower than {limits.body_min_rate:,} bytes/s: "
                    "send it faster or in smaller calls"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracking_send)
        except BodyReadTimeout as exc:
            # Raised outside the app's own error handlers (a middleware reading the body).
            if response_started:
                raise
            body = json.dumps(error_body("body_timeout", exc.message)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
