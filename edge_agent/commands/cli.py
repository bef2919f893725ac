"""`dockside-agent`: enroll this PC, run the agent, look at its state."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import click
import grpc

from dockside.errors import DocksideError, SyncError
from dockside.v1 import sync_pb2 as pb
from edge_agent import __version__
from edge_agent.agent import Agent, AgentSettings
from edge_agent.commands.agent_setup import (
    EnrollmentRefused,
    Refused,
    agent_setup,
    config_option,
    data_dir_option,
    opened_store,
    tls_options,
)
from edge_agent.commands.backup import agent_lock, backup_command, restore_command
from edge_agent.commands.discover import discover_command
from edge_agent.commands.doctor import doctor_command
from edge_agent.config import CONFIG_ENV, configure_logging
from edge_agent.http.local_access import AccessPolicy
from edge_agent.http.local_credentials import (
    PAIR_CODE_TRIES,
    ensure_local_token,
    issue_pair_code,
    rotate_local_token,
    unpair_all_screens,
)
from edge_agent.http.server import parse_address, run_forever
from edge_agent.shutdown import threads_abandoned
from edge_agent.store.data_dir import DATA_DIR_ENV, resolve_data_dir
from edge_agent.store.database import DB_FILENAME, Store
from edge_agent.store.outbox import Outbox
from edge_agent.sync import GrpcTransport
from edge_agent.sync.cloud_tls import CloudTls, save_enrolled_tls
from edge_agent.sync.identity import load_identity, require_identity, save_identity
from edge_agent.update import restart_into, self_update_for, serve_with_updates

__all__ = ["main"]


def _tls_hint(tls: CloudTls) -> str:
    if tls.enabled:
        return (
            f"; check that the cloud serves TLS on this port, that {tls.ca or 'the system CA store'} "
            "is the CA that signed the cloud's certificate and the certificate names the host you gave"
            + (", and that the cloud trusts this PC's --tls-cert" if tls.cert else "")
        )
    return "; if the cloud serves TLS, give --tls-ca (the CA that signed its certificate)"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dockside-agent")
def main() -> None:
    """The Dockside edge agent: prints labels and reads scales for a warehouse's packing stations.

    Enroll the PC once with a token from the cloud console, then `run` it (as a service in
    production). Packing works offline; events reach the cloud when the link is back.
    """


@main.command()
@click.option("--cloud", required=True, metavar="HOST:PORT", help="The cloud's gRPC sync address.")
@click.option(
    "--token",
    required=True,
    envvar="DOCKSIDE_ENROLLMENT_TOKEN",
    help="The one-time enrollment token from the cloud console (or $DOCKSIDE_ENROLLMENT_TOKEN).",
)
@data_dir_option
@config_option("The agent's TOML configuration, for its [cloud] tls_* keys. Default: as `run`.")
@tls_options
def enroll(
    cloud: str,
    token: str,
    data_dir: Path | None,
    config_path: Path | None,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Trade a one-time enrollment token for this agent's identity and store it in the data dir.

    With --tls-ca (and --tls-cert/--tls-key for mutual TLS) the paths are recorded beside the
    store, so `run` uses TLS without repeating them unless the config's [cloud] keys say otherwise.
    """
    try:
        parse_address(cloud)
    except DocksideError as exc:
        raise Refused(exc.message) from None
    setup = agent_setup(config_path, data_dir, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    folder, tls, credentials = setup.folder, setup.tls, setup.credentials()
    with opened_store(folder) as store:
        existing = load_identity(store)
        if existing is not None:
            raise Refused(
                f"this data dir ({folder}) is already enrolled as agent {existing.agent_id} for warehouse "
                f"{existing.warehouse}: run it with `dockside-agent run`, or enroll into another --data-dir"
            )
        request = pb.EnrollRequest(
            token=token.strip(), hostname=socket.gethostname(), agent_version=__version__
        )
        try:
            answer = asyncio.run(_enroll(cloud, request, credentials))
        except SyncError as exc:
            if exc.fatal:
                raise EnrollmentRefused(f"the cloud refused the enrollment: {exc.message}") from None
            raise Refused(f"enrollment failed: {exc.message}{_tls_hint(tls)}") from None
        identity = save_identity(
            store,
            agent_id=answer.agent_id,
            credential=answer.credential,
            warehouse=answer.warehouse,
            tenant=answer.tenant,
            cloud=cloud,
        )
        save_enrolled_tls(folder, tls)
    click.echo(f"Enrolled as agent {identity.agent_id} for warehouse {identity.warehouse}.")
    if tls.enabled:
        click.echo(f"Sync uses TLS with CA {tls.ca or 'from the system store'} (recorded for `run`).")
    click.echo(f"Start it with: dockside-agent run --data-dir {folder}")


async def _enroll(
    cloud: str, request: pb.EnrollRequest, credentials: grpc.ChannelCredentials | None
) -> pb.EnrollResponse:
    transport = GrpcTransport(cloud, channel_credentials=credentials)
    try:
        return await transport.enroll(request)
    finally:
        await transport.close()


@main.command()
@data_dir_option
@config_option(
    f"The agent's TOML configuration (keys: installers/dockside-agent.toml). Default: ${CONFIG_ENV}, "
    "else /etc/dockside-agent/agent.toml (Windows: %PROGRAMDATA%\\Dockside\\Agent\\agent.toml) when present."
)
@click.option(
    "--http",
    default=None,
    metavar="HOST:PORT",
    help="Where the station page and local API listen (port 0 picks a free port). "
    "Default: the config's http.bind, else 127.0.0.1:8100.",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Once serving, write {"http": "host:port"} here (atomically); removed at exit.',
)
@click.option(
    "--scale-wait",
    type=click.FloatRange(0.1, 60.0),
    default=None,
    help="Seconds a pack waits for a scale that has no fresh stable weight. "
    f"Default: the config's packing.scale_wait_s, else {AgentSettings.scale_wait_s}.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="How much the agent logs (to stderr). Default: the config's log.level, else info.",
)
@click.option(
    "--no-advertise",
    is_flag=True,
    help="Do not announce the agent as _dockside._tcp on the LAN nor watch for printers there.",
)
@tls_options
def run(
    data_dir: Path | None,
    config_path: Path | None,
    http: str | None,
    ready_file: Path | None,
    scale_wait: float | None,
    log_level: str | None,
    no_advertise: bool,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Run the agent: sync, outbox sender, devices, station page and local API, until SIGTERM/Ctrl-C."""
    setup = agent_setup(config_path, data_dir, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key)
    config, folder = setup.config, setup.folder
    configure_logging(config.log, level=log_level, background=True)
    http = http or config.http.bind
    try:
        parse_address(http)
    except DocksideError as exc:
        raise Refused(exc.message) from None
    credentials = setup.credentials()
    # The data dir's lock, held while the agent runs: a restore refuses while it is held.
    with agent_lock(folder), opened_store(folder) as store:
        try:
            identity = require_identity(store, folder)
            updates = self_update_for(config.update, folder, identity.credential)
            if updates is not None and updates.recover():
                store.close()
                restart_into(updates.slot.path)  # a swapped-in release never served: back to the previous one
            agent = Agent(
                store,
                identity,
                GrpcTransport(
                    config.cloud.address or identity.cloud,
                    identity.credential,
                    channel_credentials=credentials,
                    tls=setup.tls,
                ),
                AgentSettings(
                    scale_wait_s=scale_wait or config.packing.scale_wait_s,
                    advertise=not no_advertise,
                    personal_data_retention_days=config.privacy.personal_data_retention_days,
                    carrier_label_limit_s=config.packing.carrier_label_limit_s,
                    print_confirm_timeout_s=config.packing.print_confirm_timeout_s,
                    scan_reader=config.scanner.reader(),
                ),
            )
            access = AccessPolicy(config.http.allowed_hosts, config.http.allowed_origins)
            run_forever(
                serve_with_updates(agent, http, ready_file=ready_file, updates=updates, access=access)
            )
        except DocksideError as exc:
            raise Refused(exc.message) from None
    if updates is not None and updates.staged is not None:
        trial = ["run", "--data-dir", str(folder), "--http", "127.0.0.1:0"]
        updates.apply([*trial, "--config", str(config_path)] if config_path else trial)
        restart_into(updates.slot.path)  # at once: after a swap the old process may not import anything
    if threads_abandoned():  # logged with their stacks: the interpreter's exit would join them forever
        logging.shutdown()
        os._exit(0)


@main.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status(data_dir: Path | None, as_json: bool) -> None:
    """Show this agent's identity, sync revision, outbox and jobs, read from its data dir."""
    folder = resolve_data_dir(data_dir)
    if not (folder / DB_FILENAME).exists():
        raise Refused(
            f"there is no agent in {folder}: enroll it with "
            "`dockside-agent enroll --cloud HOST:PORT --token T`"
        )
    with opened_store(folder) as store:
        report = _status_report(store, folder)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    enrolled = report["enrolled"]
    click.echo(f"data dir      {report['data_dir']}")
    if enrolled:
        click.echo(f"agent         {report['agent_id']} (warehouse {report['warehouse']})")
        click.echo(f"cloud         {report['cloud']}")
    else:
        click.echo("agent         not enrolled")
    click.echo(f"revision      {report['revision']}")
    click.echo(f"outbox        {report['outbox_depth']} waiting, {report['dead_letters']} dead letters")
    jobs = ", ".join(f"{count} {state}" for state, count in sorted(report["jobs"].items())) or "none"
    click.echo(f"jobs          {jobs}")
    cached = report["cached"]
    click.echo(
        f"cache         {cached['orders']} orders, {cached['stations']} stations, "
        f"{cached['template_versions']} template versions, {cached['rulesets']} rulesets"
    )


def _status_report(store: Store, folder: Path) -> dict[str, Any]:
    identity = load_identity(store)
    outbox = Outbox(store)
    jobs = {
        row["status"]: row["n"]
        for row in store.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
    }
    return {
        "data_dir": str(folder),
        "enrolled": identity is not None,
        "agent_id": identity.agent_id if identity else None,
        "warehouse": identity.warehouse if identity else None,
        "cloud": identity.cloud if identity else None,
        "revision": store.revision(),
        "outbox_depth": outbox.depth(),
        "dead_letters": outbox.dead_letter_count(),
        "jobs": jobs,
        "cached": {
            table: store.count(table) for table in ("orders", "stations", "template_versions", "rulesets")
        },
    }


def _agent_folder(data_dir: Path | None) -> Path:
    folder = resolve_data_dir(data_dir)
    if not folder.is_dir():
        raise Refused(
            f"there is no agent data dir {folder}: give the one the agent runs with (--data-dir, "
            f"${DATA_DIR_ENV}), or enroll first"
        )
    return folder


@main.command("local-token")
@data_dir_option
@click.option(
    "--rotate",
    is_flag=True,
    help="Make a new token; the old one stops working at once, also in a running agent.",
)
def local_token(data_dir: Path | None, rotate: bool) -> None:
    """Print the token local programs send to the agent's API as `Authorization: Bearer <token>`.

    The token lives in the data dir (file local-token, mode 0600); it is created on first use.
    Anyone who can read it can pack and print at every station: give it to the programs on this
    PC that need it (a WMS client), never to a web page. --rotate replaces it.
    """
    folder = _agent_folder(data_dir)
    try:
        token = rotate_local_token(folder) if rotate else ensure_local_token(folder)
    except OSError as exc:
        raise Refused(
            f"cannot write the local token in {folder} ({exc.strerror or exc}): check its permissions"
        ) from None
    click.echo(token)


@main.command("pair-code")
@data_dir_option
@click.option(
    "--ttl",
    type=click.IntRange(60, 3600),
    default=600,
    show_default=True,
    help="Seconds the code stays valid.",
)
@click.option(
    "--unpair-all",
    is_flag=True,
    help="Instead: forget every paired station screen (each must pair again with a new code).",
)
def pair_code(data_dir: Path | None, ttl: int, unpair_all: bool) -> None:
    """Print a one-time code that pairs one station screen on another PC with this agent.

    Open the station page on that PC (the agent must listen on the LAN: [http] bind), type the
    code into its pairing form, and the screen keeps a session from then on. The code works once,
    expires after --ttl seconds, and is burned after a few wrong tries; a new code replaces the
    last one.
    """
    folder = _agent_folder(data_dir)
    try:
        if unpair_all:
            count = unpair_all_screens(folder)
            click.echo(f"Forgot {count} paired screen(s); each must pair again with a new code.")
            return
        code, _ = issue_pair_code(folder, ttl)
    except OSError as exc:
        raise Refused(f"cannot write in {folder} ({exc.strerror or exc}): check its permissions") from None
    click.echo(code)
    click.echo(
        f"Enter it on the station screen's pairing form within {ttl // 60} minute(s) "
        f"(one screen, {PAIR_CODE_TRIES} tries).",
        err=True,
    )


main.add_command(backup_command)
main.add_command(restore_command)
main.add_command(doctor_command)
main.add_command(discover_command)
