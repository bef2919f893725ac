"""The agent's configuration file (TOML): every key, its default, and a clear refusal of bad ones.

Which file: `--config PATH`, else `$DOCKSIDE_AGENT_CONFIG`, else the per-OS default
(`/etc/dockside-agent/agent.toml` on Linux, `%PROGRAMDATA%\\Dockside\\Agent\\agent.toml` on
Windows). A missing default file means "all defaults"; a missing file that was named explicitly
is an error. Unknown keys and bad values are refused at start with the key's dotted name and
the fix, so a typo never silently falls back to a default.

Secrets never live here: the agent's credential is written by `enroll` into its store
(`agent.db`, file mode 0600), and the update public key is public by nature. The documented
example is `installers/dockside-agent.toml`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dockside.errors import InputError
from dockside.logs import configure_logging as dockside_logging
from dockside.scanning import ORDER_AIS, ScanReader, check_affix, check_order_ais

__all__ = [
    "CONFIG_ENV",
    "AgentConfig",
    "CloudSection",
    "ConfigError",
    "HttpSection",
    "LogSection",
    "PackingSection",
    "PrivacySection",
    "ScannerSection",
    "UpdateSection",
    "channel_credentials",
    "configure_logging",
    "default_config_path",
    "load_config",
    "parse_config",
    "resolve_config_path",
]

CONFIG_ENV = "DOCKSIDE_AGENT_CONFIG"


class ConfigError(InputError):
    """The configuration file is missing, not TOML, or has a bad key; the message names the fix."""

    code = "invalid_config"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("write it as HOST:PORT, for example 127.0.0.1:8100")
    return value


_HOST_NAME = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:[0-9]{1,5})?$")
_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:[0-9]{1,5})?$")


class HttpSection(_Section):
    """[http]: where the station page and the local API listen, and who else may call it."""

    bind: str = "127.0.0.1:8100"
    # Host names (beyond 127.0.0.1, localhost, [::1] and the bound address) a browser may use.
    allowed_hosts: tuple[str, ...] = ()
    # Pages of other origins allowed to call the API with the local token (CORS, no cookies).
    allowed_origins: tuple[str, ...] = ()

    _check_bind = field_validator("bind")(_address)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _HOST_NAME.match(name.lower()):
                raise ValueError(
                    f"{name!r} is not a host name: write a name or address as a browser's address bar "
                    'shows it, without scheme, path or wildcard, for example "packing-pc-3.local" or '
                    '"192.168.1.20" (a port is optional)'
                )
        return tuple(name.lower() for name in value)

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not _ORIGIN.match(origin.lower()):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme, host and optional port, no path or "
                    'wildcard, for example "https://wms.example.com"'
                )
        return tuple(origin.lower() for origin in value)


class CloudSection(_Section):
    """[cloud]: how to reach the cloud's gRPC sync service."""

    address: str = ""  # empty: the address stored at enrollment
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return _address(value) if value else value

    @field_validator("tls_ca", "tls_cert", "tls_key")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"there is no file {value}: give the path of an existing PEM file")
        return value


class PackingSection(_Section):
    """[packing]: the pack path's tunables."""

    scale_wait_s: Annotated[float, Field(ge=0.1, le=60.0)] = 3.0
    # Seconds one PDF or PNG carrier label may take to draw before it fails (a 4-page label
    # takes tens of ms; a PDF of nested forms can take minutes). Not a bool, NaN or infinity.
    carrier_label_limit_s: Annotated[float, Field(ge=0.5, le=60.0, strict=True, allow_inf_nan=False)] = 5.0
    # Seconds a printer may take to confirm a label before the packer is asked to check that it
    # came out (it stays `sent`). $DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S, when set, wins over this.
    print_confirm_timeout_s: Annotated[float, Field(ge=1.0, le=3600.0, strict=True, allow_inf_nan=False)] = (
        30.0
    )


class ScannerSection(_Section):
    """[scanner]: what the stations' barcode scanners add around an order reference, and which
    GS1 application identifiers carry it (see `dockside.scanning`)."""

    # Taken off a scan when present (at most 16 characters each, no GS; whitespace around them
    # is ignored, since scans are trimmed first).
    prefix: str = ""
    suffix: str = ""
    # The AIs whose value is the order reference, in order of preference.
    order_ais: tuple[str, ...] = ORDER_AIS

    _check_affixes = field_validator("prefix", "suffix")(check_affix)
    _check_order_ais = field_validator("order_ais")(check_order_ais)

    def reader(self) -> ScanReader:
        """The scan reader these settings describe."""
        return ScanReader(self.prefix, self.suffix, self.order_ais)


class LogSection(_Section):
    """[log]: what the agent writes to stderr (journald or the Windows service log)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class PrivacySection(_Section):
    """[privacy]: how long the agent keeps ship-to names and addresses of packed orders."""

    personal_data_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30


class UpdateSection(_Section):
    """[update]: self-update from the releases the cloud assigns to this warehouse."""

    enabled: bool = False
    cloud_http: str = ""  # the cloud's admin/API HTTP base URL, e.g. https://cloud.example:8000
    public_key: str = ""  # the release signing key: base64 of the raw 32-byte Ed25519 public key
    check_interval_s: Annotated[float, Field(ge=10.0, le=86400.0)] = 300.0
    health_deadline_s: Annotated[float, Field(ge=5.0, le=600.0)] = 60.0

    @field_validator("cloud_http")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("write the cloud's HTTP base URL, for example https://cloud.example:8000")
        return value.rstrip("/")

    @field_validator("public_key")
    @classmethod
    def _check_key(cls, value: str) -> str:
        if not value:
            return value
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                "give the base64 of the raw 32-byte Ed25519 public key, as printed by "
                "`dockside-cloud keygen-release`"
            )
        return value


class AgentConfig(_Section):
    """The whole file; every section is optional and every key has a default."""

    data_dir: Path | None = None
    http: HttpSection = HttpSection()
    cloud: CloudSection = CloudSection()
    packing: PackingSection = PackingSection()
    scanner: ScannerSection = ScannerSection()
    log: LogSection = LogSection()
    privacy: PrivacySection = PrivacySection()
    update: UpdateSection = UpdateSection()

    @model_validator(mode="after")
    def _check_together(self) -> AgentConfig:
        update = self.update
        if update.enabled and not (update.cloud_http and update.public_key):
            raise ValueError("update.enabled needs update.cloud_http and update.public_key set")
        tls = self.cloud
        if (tls.tls_cert is None) != (tls.tls_key is None):
            raise ValueError("cloud.tls_cert and cloud.tls_key go together: set both or neither")
        return self


def default_config_path(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-OS place the installers put the file."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "win32":
        base = env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(base) / "Dockside" / "Agent" / "agent.toml"
    return Path("/etc/dockside-agent/agent.toml")


def resolve_config_path(option: str | Path | None, env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """(path, named): the option, else the variable, else the default (named=False: may be absent)."""
    env = os.environ if env is None else env
    if option:
        return Path(option).expanduser(), True
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser(), True
    return default_config_path(env), False


def _describe(exc: ValidationError, path: Path) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(file)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key: remove it, or check its spelling against installers/dockside-agent.toml"
        elif error["type"] == "literal_error":
            message = f"{message} (got {error['input']!r})"
        problems.append(f"  {key}: {message}")
    return f"the configuration file {path} has {len(problems)} problem(s):\n" + "\n".join(problems)


def parse_config(text: str, path: Path) -> AgentConfig:
    """Validate the TOML `text` read from `path` (named in every message)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the configuration file {path} is not valid TOML ({exc}): fix that line") from None
    try:
        return AgentConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def load_config(option: str | Path | None = None, env: Mapping[str, str] | None = None) -> AgentConfig:
    """The configuration in force; ConfigError with the key and the fix when it is unusable."""
    path, named = resolve_config_path(option, env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not named:
            return AgentConfig()
        raise ConfigError(
            f"there is no configuration file {path}: create it (see installers/dockside-agent.toml) "
            f"or unset ${CONFIG_ENV} / drop --config to use the defaults"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the configuration file {path} ({exc}): check its permissions"
        ) from None
    return parse_config(text, path)


def configure_logging(
    section: LogSection, *, level: str | None = None, background: bool = False
) -> logging.Handler:
    """Send the agent's log to stderr at the configured level and format (`level` overrides).

    The shared `dockside.logs` setup: JSON lines carry the ids a log call passes (order_ref,
    job_id, station, printer...) and every secret-shaped value is masked before it is written.
    `background` (the running agent) writes from a thread, so a pack never waits for the sink.
    """
    return dockside_logging(level or section.level, section.format, background=background)


def channel_credentials(section: CloudSection) -> grpc.ChannelCredentials | None:
    """TLS credentials for the sync channel when [cloud] names a CA (and maybe a client pair)."""
    if section.tls_ca is None and section.tls_cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=section.tls_ca.read_bytes() if section.tls_ca else None,
        private_key=section.tls_key.read_bytes() if section.tls_key else None,
        certificate_chain=section.tls_cert.read_bytes() if section.tls_cert else None,
    )
