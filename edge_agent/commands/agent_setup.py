"""What the agent's commands open before they work, in one place: configuration, data dir, TLS, store.

`enroll`, `run` and `doctor` read the same configuration file, find the data dir the same way
(option, else the config's `data_dir`, else `$DOCKSIDE_AGENT_DATA_DIR`, else the per-OS folder)
and use the same TLS files for the cloud (options, else the config's `[cloud] tls_*`, else what
enrollment recorded). Whatever cannot be opened stops the command with `Refused`: a message that
says why and what to do, exit status 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from dockside.errors import DocksideError
from edge_agent.config import AgentConfig, load_config
from edge_agent.store.data_dir import DATA_DIR_ENV, resolve_data_dir
from edge_agent.store.database import Store
from edge_agent.sync.cloud_tls import CloudTls, resolve_cloud_tls

__all__ = [
    "AgentSetup",
    "EnrollmentRefused",
    "Refused",
    "agent_setup",
    "config_option",
    "data_dir_option",
    "opened_store",
    "tls_options",
]

Command = TypeVar("Command", bound=Callable[..., Any])


class Refused(click.ClickException):
    """A command that cannot go on; the message says why and what to do (exit status 1)."""

    exit_code = 1


class EnrollmentRefused(Refused):
    """The cloud said no to the token (wrong, expired, used): exit status 2, unlike a network failure."""

    exit_code = 2


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Folder holding the agent's database. Default: ${DATA_DIR_ENV}, else a per-OS user data folder.",
)


def config_option(help_text: str) -> Callable[[Command], Command]:
    """--config: the agent's TOML configuration; `help_text` says what the command reads from it."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=help_text,
    )


def tls_options(command: Command) -> Command:
    """--tls-ca/--tls-cert/--tls-key: TLS to the cloud's sync service (options win over the config)."""
    pem = click.Path(dir_okay=False, path_type=Path)
    for option in reversed(
        [
            click.option(
                "--tls-ca",
                type=pem,
                default=None,
                help="PEM CA that signed the cloud's certificate: sync over TLS. "
                "Default: the config's [cloud] tls_ca, else what enrollment recorded, else plain gRPC.",
            ),
            click.option(
                "--tls-cert",
                type=pem,
                default=None,
                help="PEM certificate of this PC, when the cloud asks for mutual TLS (with --tls-key).",
            ),
            click.option("--tls-key", type=pem, default=None, help="PEM private key for --tls-cert."),
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True)
class AgentSetup:
    """The configuration in force, the data dir it names and the TLS files for the cloud."""

    config: AgentConfig
    folder: Path
    tls: CloudTls

    def credentials(self) -> grpc.ChannelCredentials | None:
        """gRPC channel credentials for the TLS files, or None for plain gRPC; Refused if unusable."""
        try:
            return self.tls.credentials()
        except DocksideError as exc:
            raise Refused(exc.message) from None


def agent_setup(
    config_path: Path | None,
    data_dir: Path | None,
    *,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> AgentSetup:
    """Read the configuration, find the data dir and decide the TLS files; Refused when one is unusable."""
    try:
        config = load_config(config_path)
    except DocksideError as exc:
        raise Refused(exc.message) from None
    folder = resolve_data_dir(data_dir or config.data_dir)
    try:
        tls = resolve_cloud_tls(config.cloud, folder, ca=tls_ca, cert=tls_cert, key=tls_key)
    except DocksideError as exc:
        raise Refused(exc.message) from None
    return AgentSetup(config=config, folder=folder, tls=tls)


@contextmanager
def opened_store(folder: Path) -> Iterator[Store]:
    """The agent's store in `folder`, closed after the block; Refused when it cannot be opened."""
    try:
        store = Store.open(folder)
    except DocksideError as exc:
        raise Refused(exc.message) from None
    except OSError as exc:
        raise Refused(
            f"cannot use the data dir {folder} ({exc.strerror or exc}): check its permissions"
        ) from None
    try:
        yield store
    finally:
        store.close()
