"""The HTTP control port every mock shares: uvicorn inside the mock's own event loop, contract errors.

Each mock is a `ControlledMock`: its device (a print port, a pty) and its control port run on one
event loop in the mock's own thread, so control handlers touch the device's state without locks.
Each builds its small FastAPI app with `control_app`; this module binds its socket up front (so
port 0 resolves to a real port before anyone is told about it), runs uvicorn on the mock's loop,
and turns every failure into `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from abc import ABC, abstractmethod
from typing import Any, Self

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hardware_mocks.mock_thread import MockThread

__all__ = [
    "ControlError",
    "ControlServer",
    "ControlledMock",
    "bind_tcp",
    "control_app",
    "install_error_handlers",
    "read_json_object",
]

# Control bodies are a few dozen bytes; anything near this is a mistake or an attack.
MAX_BODY_BYTES = 64 * 1024


class ControlError(Exception):
    """A control request the mock refuses, with the contract error code and a what-to-do message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_body(code: str, message: str) -> dict[str, Any]:
    """The contract error shape."""
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    """Make every error on a control port answer in the contract shape, never with a stack trace."""

    async def on_control_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ControlError)
        return JSONResponse(_error_body(exc.code, exc.message), status_code=exc.status)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            code, message = (
                "not_found",
                f"no control endpoint at {request.url.path}: see GET /docs for the list",
            )
        elif exc.status_code == 405:
            code = "method_not_allowed"
            message = f"{request.method} is not allowed on {request.url.path}: see GET /docs for the methods"
        else:
            code, message = "http_error", str(exc.detail)
        return JSONResponse(_error_body(code, message), status_code=exc.status_code)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        )
        return JSONResponse(
            _error_body("invalid_request", f"the request is not valid ({problems}): fix it and retry"),
            status_code=400,
        )

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            _error_body("internal_error", f"the mock failed ({type(exc).__name__}): see its log and retry"),
            status_code=500,
        )

    app.add_exception_handler(ControlError, on_control_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


def control_app(title: str, description: str) -> FastAPI:
    """An empty control app whose every error answers in the contract shape; the mock adds its routes."""
    app = FastAPI(title=title, description=description, version="1")
    install_error_handlers(app)
    return app


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a ControlError saying what is wrong with it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ControlError(
            413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes: send one small JSON object"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ControlError(
                413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes: send one small JSON object"
            )
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(
            400, "invalid_json", f"the body is not valid JSON ({exc}): send a JSON object"
        ) from None
    if not isinstance(value, dict):
        raise ControlError(400, "invalid_json", 'the body must be a JSON object, like {"fault": "none"}')
    return value


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one), ready to hand to a server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted connections (no ~40 ms per answer).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ControlServer:
    """A FastAPI app served by uvicorn on an already bound socket, inside the caller's event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._socket = bind_tcp(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """`host:port` as a client dials it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self, timeout_s: float = 10.0) -> None:
        """Serve, and return once uvicorn accepts connections."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._socket]))
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the control server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the control server on {self.address} did not start in {timeout_s} s")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.should_exit = True
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        self._socket.close()


class ControlledMock(ABC):
    """A mock device with an HTTP control port, both on one event loop in the mock's own thread.

    A subclass opens and closes its device (`_open_device`, `_close_device`) and builds its control
    app (`_control_app`, after the device is open: the app may show what opening resolved, such as a
    port). Start opens the device, then the control port; stop closes them the other way round, so
    no control request reaches a device that is closing.
    """

    def __init__(self, thread_name: str, control_host: str, control_port: int) -> None:
        self.control_host = control_host
        self.requested_control_port = control_port
        self._thread = MockThread(thread_name)
        self._control: ControlServer | None = None

    def start(self) -> Self:
        """Open the device and the control port; return once both accept connections."""
        self._thread.start(self._start())
        return self

    def stop(self) -> None:
        """Close the control port and the device, and end the thread. Safe to call twice."""
        self._thread.stop(self._stop())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def control_port(self) -> int:
        """The control API's port (resolved after start)."""
        return self._control.port if self._control is not None else 0

    @property
    def control_address(self) -> str:
        """`host:port` of the control API."""
        return self._control.address if self._control is not None else ""

    @abstractmethod
    async def _open_device(self) -> None:
        """Open the device itself (on the mock's loop)."""

    @abstractmethod
    async def _close_device(self) -> None:
        """Close whatever `_open_device` opened, even if it opened only part of it."""

    @abstractmethod
    def _control_app(self) -> FastAPI:
        """The mock's control app (see `control_app`)."""

    async def _start(self) -> None:
        try:
            await self._open_device()
            self._control = ControlServer(self._control_app(), self.control_host, self.requested_control_port)
            await self._control.start()
        except BaseException:
            # A control port that cannot open (taken, say) must not leave the device's port bound.
            await self._close_device()
            raise

    async def _stop(self) -> None:
        if self._control is not None:
            await self._control.stop()
        await self._close_device()
