"""`dockside-cloud`: run the control plane, create its schema, and hand out admin API tokens.

The credential commands (tenants, tokens, users, the secret key) are in cloud/commands/access.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click
from alembic import command as alembic_command

from cloud.commands.access import ACCESS_COMMANDS, database_url_option
from cloud.commands.import_orders import import_command
from cloud.commands.releases import keygen_release_command, sign_release_command
from cloud.server import parse_address, serve
from cloud.storage import migrations
from cloud.storage.sealed_secrets import MissingSecretKey, ensure_key
from cloud.storage.store import CloudStore
from cloud.sync.tls import ServerTls
from dockside.logs import configure_logging

__all__ = ["main"]

_LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None
try:
    from uvloop import new_event_loop as _LOOP_FACTORY
except ImportError:  # Windows has no uvloop
    _LOOP_FACTORY = None

_database_url = database_url_option


def _address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _run(main_coroutine: Coroutine[Any, Any, None]) -> None:
    """Run the coroutine on uvloop when it is installed (a lower HTTP floor), else asyncio."""
    with asyncio.Runner(loop_factory=_LOOP_FACTORY) as runner:
        runner.run(main_coroutine)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Dockside cloud control plane: admin API, agent sync service and their database."""


@main.command("serve")
@click.option(
    "--http",
    default="127.0.0.1:8000",
    show_default=True,
    callback=_address,
    help="HOST:PORT for the admin API, console, /docs, /healthz and /metrics; port 0 picks a free port.",
)
@click.option(
    "--grpc",
    "grpc_address",
    default="127.0.0.1:50051",
    show_default=True,
    callback=_address,
    help="HOST:PORT for the gRPC sync service agents connect to; port 0 picks a free port.",
)
@_database_url
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help='Once both servers listen, write {"http": "host:port", "grpc": "host:port"} here (atomically).',
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="DOCKSIDE_LOG_FORMAT",
    default="text",
    show_default=True,
    help="text for people, json (one object a line, secrets masked) for log shippers.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate (chain) for gRPC TLS.",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="PEM private key for --tls-cert."
)
@click.option(
    "--tls-client-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM CA that signs agents' client certificates: turns on mutual TLS.",
)
def serve_command(
    http: str,
    grpc_address: str,
    database_url: str,
    ready_file: Path | None,
    log_level: str,
    log_format: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
) -> None:
    """Run the admin API and the sync service in one process until SIGTERM or Ctrl-C."""
    configure_logging(log_level, log_format)
    try:
        # Before anything listens: a cloud that cannot open its TOTP and webhook secrets is broken.
        key_file = ensure_key(database_url)
    except MissingSecretKey as exc:
        raise click.ClickException(exc.message) from None
    if key_file is not None:
        click.echo(f"DOCKSIDE_SECRET_KEY not set: using the key kept in {key_file}", err=True)
    if (tls_cert is None) != (tls_key is None) or (tls_client_ca is not None and tls_cert is None):
        raise click.UsageError("TLS needs both --tls-cert and --tls-key (--tls-client-ca only with them)")
    try:
        tls = (
            ServerTls.load(cert=tls_cert, key=tls_key, client_ca=tls_client_ca)
            if tls_cert and tls_key
            else None
        )
        _run(
            serve(
                database_url,
                http=http,
                grpc=grpc_address,
                ready_file=ready_file,
                log_level=log_level,
                tls=tls,
            )
        )
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("init-db")
@_database_url
def init_db_command(database_url: str) -> None:
    """Create the cloud's tables, default tenant and sync clock (safe to run again)."""
    store = CloudStore.open(database_url)
    store.close()
    click.echo(f"database ready: {database_url.split('@')[-1]}", err=True)


@main.command("draft-migration")
@click.argument("message")
@_database_url
def draft_migration_command(message: str, database_url: str) -> None:  # pragma: no cover - a developer's tool
    """Draft a migration named MESSAGE ("what changed") in cloud/storage/migrations/versions/ for
    what schema.py has and the database (brought to head first) lacks; read and fix the draft
    before committing it."""
    store = CloudStore.open(database_url)
    with store.engine.connect() as conn:
        alembic_command.revision(migrations.alembic_config(conn), message=message, autogenerate=True)
    store.close()


for command in ACCESS_COMMANDS:
    main.add_command(command)
main.add_command(import_command)
main.add_command(keygen_release_command)
main.add_command(sign_release_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
