"""`dockside-cloud serve`: the admin API (uvicorn) and the Sync service (grpc.aio) in one loop.

Both listen before the ready file is written; SIGTERM or SIGINT stops both cleanly: Watch
streams are woken and ended, in-flight calls get a grace period, then the database is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from cloud.access.alerts import run_alerts
from cloud.app import create_app
from cloud.orders.overdue_parcels import run_overdue_parcels
from cloud.shipping.labels_bought import run_labels_bought
from cloud.storage.compaction import CompactionPolicy, run_compaction
from cloud.storage.store import CloudStore
from cloud.sync.service import build_grpc_server
from cloud.sync.tls import ServerTls
from cloud.sync.watch import ChangeFeed
from cloud.webhooks.delivery import run_webhooks
from dockside.heap import freeze_startup_heap
from dockside.http_limits import HttpLimits, bounded_protocol

__all__ = ["format_address", "parse_address", "run_cloud", "serve", "write_ready_file"]

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 30.0
_GRPC_GRACE_S = 5.0


def parse_address(text: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' as (host, port); raises ValueError with what to fix."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:8000; port 0 picks a free port)")
    return host.strip("[]"), int(port)


def format_address(host: str, port: int) -> str:
    """The inverse of parse_address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_ready_file(path: Path, addresses: dict[str, str]) -> None:
    """Write the listening addresses atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(addresses, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns the signals of both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP; without it every answer of the admin API waited ~40 ms
    # for the client's delayed ACK (uvicorn writes the head and the body separately).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen for HTTP on {format_address(host, port)} ({exc.strerror}): pick another port"
        ) from exc
    sock.set_inheritable(True)
    return sock


async def serve(
    database_url: str,
    *,
    http: str = "127.0.0.1:8000",
    grpc: str = "127.0.0.1:50051",
    ready_file: Path | None = None,
    log_level: str = "info",
    tls: ServerTls | None = None,
) -> None:
    """Run both servers until SIGTERM or SIGINT; gRPC over TLS when `tls` is given."""
    parse_address(http)
    parse_address(grpc)
    try:
        limits = HttpLimits.from_env()
    except ValueError as exc:
        # A typo in the environment is the operator's to fix, not a stack trace.
        raise SystemExit(f"Error: {exc}") from None
    _remove(ready_file)
    store = await asyncio.to_thread(CloudStore.open, database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def ready(addresses: dict[str, str]) -> None:
        # What startup built lives as long as the process: keep full collections off it.
        frozen = freeze_startup_heap()
        log.debug("%d startup objects kept out of garbage collection", frozen)
        if ready_file is not None:
            write_ready_file(ready_file, addresses)
        log.info("dockside-cloud listening: http %s, grpc %s", addresses["http"], addresses["grpc"])

    try:
        await run_cloud(
            store,
            http=http,
            grpc=grpc,
            stop=stop,
            on_ready=ready,
            log_level=log_level,
            tls=tls,
            limits=limits,
        )
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        store.close()
        _remove(ready_file)


async def run_cloud(
    store: CloudStore,
    *,
    http: str,
    grpc: str,
    stop: asyncio.Event,
    on_ready: Callable[[dict[str, str]], None],
    log_level: str = "info",
    heartbeat_s: float = 10.0,
    compaction: CompactionPolicy | None = None,
    tls: ServerTls | None = None,
    limits: HttpLimits | None = None,
) -> None:
    """Run the admin API and the Sync service over `store` until `stop` is set.

    The change log is compacted on `compaction`'s schedule (the default policy when None).
    `limits` bounds the HTTP side's header and body read times and its connections (when None:
    the defaults with $DOCKSIDE_HTTP_* applied, see dockside.http_limits).

    `on_ready` gets {"http": "host:port", "grpc": "host:port"} once both listen. On the way out
    the store's notifier is closed, which ends every Watch stream.
    """
    http_host, http_port = parse_address(http)
    grpc_host, _ = parse_address(grpc)
    limits = limits or HttpLimits.from_env()
    sock = _listening_socket(http_host, http_port)
    grpc_server = None
    http_task: asyncio.Task[None] | None = None
    compacting = asyncio.create_task(run_compaction(store, compaction or CompactionPolicy(), stop))
    delivering = asyncio.create_task(run_webhooks(store, stop))
    alerting = asyncio.create_task(run_alerts(store, stop))
    overdue = asyncio.create_task(run_overdue_parcels(store, stop))
    buying = asyncio.create_task(run_labels_bought(store, stop))
    try:
        grpc_server, grpc_port = build_grpc_server(
            store, grpc, feed=ChangeFeed(store, heartbeat_s=heartbeat_s), tls=tls
        )
        await grpc_server.start()
        config = uvicorn.Config(
            create_app(store, limits),
            loop="none",
            http=bounded_protocol(limits),
            timeout_keep_alive=int(limits.keep_alive_s),
            lifespan="off",
            log_level=log_level,
            access_log=False,
            server_header=False,
        )
        http_server = _EmbeddedUvicorn(config)
        http_task = asyncio.create_task(http_server.serve(sockets=[sock]))
        await _started(http_server, http_task)
        on_ready(
            {
                "http": format_address(http_host, sock.getsockname()[1]),
                "grpc": format_address(grpc_host, grpc_port),
            }
        )
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        log.info("dockside-cloud stopping")
        http_server.should_exit = True
    finally:
        stop.set()
        await compacting
        await delivering
        await alerting
        await overdue
        await buying
        # Watch streams wait on the notifier: wake them so the gRPC grace period is not spent idle.
        store.notifier.close()
        if grpc_server is not None:
            await grpc_server.stop(_GRPC_GRACE_S)
        if http_task is not None:
            await http_task
        sock.close()


def _remove(path: Path | None) -> None:
    # A ready file that outlives its server would tell a launcher to connect to nothing.
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Wait until uvicorn accepts connections; fail if it stopped first."""
    deadline = asyncio.get_running_loop().time() + _STARTUP_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the HTTP server stopped during startup: see the log above")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the HTTP server did not start within {_STARTUP_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.01)
