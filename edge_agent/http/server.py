"""Serving the agent: its local API under uvicorn on the same event loop as its sync and devices.

`run_agent` starts the agent, binds the HTTP socket itself (so port 0 resolves to a real port
before anyone is told), serves until asked to stop (SIGTERM, SIGINT or the `stop` event), then
stops the server, the agent's tasks and its devices in that order. uvicorn's own signal
handling is switched off: it would re-raise the signal after shutdown and kill the process
before the agent has closed its devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from dockside.errors import InputError
from dockside.heap import freeze_startup_heap
from dockside.http_limits import HttpLimits, bounded_protocol
from edge_agent import __version__
from edge_agent.agent import Agent
from edge_agent.devices.lan_presence import LanPresence
from edge_agent.http.api import create_app
from edge_agent.http.item_check_api import item_check_router
from edge_agent.http.local_access import AccessPolicy
from edge_agent.http.local_credentials import LocalCredentials
from edge_agent.http.packers_api import packers_router
from edge_agent.shutdown import BoundedExecutor, bounded_step, in_daemon_thread

__all__ = [
    "AGENT_MAX_CONNECTIONS",
    "agent_app",
    "agent_http_limits",
    "parse_address",
    "run_agent",
    "run_forever",
    "write_ready_file",
]

log = logging.getLogger(__name__)


def parse_address(text: str) -> tuple[str, int]:
    """ "host:port" (or "[v6]:port") -> (host, port); InputError with the fix if malformed."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(
            f"{text!r} is not an address: write it as HOST:PORT, for example 127.0.0.1:8100 "
            "(port 0 picks a free one)",
            code="invalid_address",
        )
    return host, int(port_text)


def write_ready_file(path: Path, content: dict[str, Any]) -> None:
    """Write `content` as JSON so a reader sees either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(content, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): stop whatever uses that port, "
            "or pass another with --http",
            code="address_in_use",
        ) from exc
    return sock


# A packing PC serves a few station screens and local programs: far fewer than the cloud.
AGENT_MAX_CONNECTIONS = 256


def agent_http_limits(environ: dict[str, str] | None = None) -> HttpLimits:
    """The agent's HTTP bounds: the shared defaults and $DOCKSIDE_HTTP_*, with the agent's connection cap."""
    environ = dict(os.environ) if environ is None else environ
    limits = HttpLimits.from_env(environ)
    if not environ.get("DOCKSIDE_HTTP_MAX_CONNECTIONS", "").strip():
        limits = dataclasses.replace(limits, max_connections=AGENT_MAX_CONNECTIONS)
    return limits


def agent_app(
    agent: Agent, credentials: LocalCredentials, access: AccessPolicy | None, limits: HttpLimits
) -> FastAPI:
    """The agent's whole local API: `create_app`'s routes and the station packers' routes, behind
    the same boundary (the middleware wraps every route, whenever it was added)."""
    app = create_app(agent, credentials, access, limits=limits)
    app.include_router(packers_router(agent.floor, agent.sign_ins))
    app.include_router(item_check_router(agent.floor, agent.packer.item_checks, agent.settings.scan_reader))
    return app


class _Server(uvicorn.Server):
    """uvicorn that tells when it is serving and leaves the signals to the agent."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.serving = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.serving.set()


async def run_agent(
    agent: Agent,
    http: str,
    *,
    ready_file: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
    access: AccessPolicy | None = None,
) -> None:
    """Start `agent`, serve its API on `http` until stopped, then shut everything down in order.

    The API's credentials live beside the agent's database (the local token is created there on
    first start); `access` adds the configured host names and origins to the defaults.
    """
    host, port = parse_address(http)
    if agent.store.path is None:
        raise InputError(
            "the agent's store has no folder to keep the local API token in: open it from a data dir",
            code="no_data_dir",
        )
    credentials = LocalCredentials(agent.store.path.parent)
    sock = _listening_socket(host, port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
    limits = agent_http_limits()
    config = uvicorn.Config(
        agent_app(agent, credentials, access, limits),
        http=bounded_protocol(limits),
        timeout_keep_alive=int(limits.keep_alive_s),
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    advertising: asyncio.Task[None] | None = None
    try:
        await agent.start()
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        ready = asyncio.create_task(server.serving.wait(), name="ready")
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            bound_host, bound_port = sock.getsockname()[:2]
            address = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
            if ready_file is not None:
                write_ready_file(ready_file, {"http": address})
            if on_ready is not None:
                on_ready(address)
            if handle_signals:  # this call owns the process: what startup built stays for good
                freeze_startup_heap()
            if agent.settings.advertise:
                agent.lan = LanPresence(
                    agent.identity.agent_id,
                    int(bound_port),
                    warehouse=agent.identity.warehouse,
                    version=__version__,
                    host=str(bound_host),
                    interfaces=list(agent.settings.lan_interfaces) if agent.settings.lan_interfaces else None,
                )
                # zeroconf blocks while it announces: never on the loop, never before serving.
                advertising = asyncio.create_task(asyncio.to_thread(agent.lan.start), name="advertise")
            log.warning("dockside-agent %s serving on http://%s", agent.identity.agent_id, address)
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        for task in (ready, stopping):
            task.cancel()
        await serving
    finally:
        if advertising is not None:  # a LAN that refused us must not fail the shutdown (logged)
            await bounded_step("the LAN advertisement's start", advertising)
        if agent.lan is not None:
            await bounded_step("the LAN advertisement", in_daemon_thread("LAN", agent.lan.stop))
            agent.lan = None
        for signum in handled:
            loop.remove_signal_handler(signum)
        await agent.stop()
        sock.close()
        if ready_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(ready_file)


def run_forever(main: Coroutine[Any, Any, None]) -> None:
    """Run the agent's main coroutine on uvloop when it is installed (lower latency), else asyncio.

    The loop's default executor is bounded at shutdown (edge_agent.shutdown.BoundedExecutor): a
    `to_thread` stuck in a device call is logged with its stack instead of hanging the exit.
    """

    async def bounded() -> None:
        asyncio.get_running_loop().set_default_executor(BoundedExecutor(thread_name_prefix="agent"))
        await main

    try:
        import uvloop
    except ImportError:
        asyncio.run(bounded())
        return
    uvloop.run(bounded())
