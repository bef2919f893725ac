"""Which TLS files the agent's sync channel uses, decided once for `enroll`, `run` and `doctor`.

Precedence: the command's `--tls-*` options, else the configuration file's `[cloud] tls_*`
keys, else the files recorded at enrollment (`cloud-tls.json` beside the store), else plain
gRPC. Enrollment records its TLS paths so a PC enrolled with `--tls-ca` keeps using TLS
without repeating it; the file holds paths only, never key material. The store's schema is
untouched on purpose: the paths are configuration, not synced state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

from dockside.errors import InputError
from edge_agent.config import CloudSection
from edge_agent.sync.tls import client_credentials

__all__ = [
    "TLS_FILENAME",
    "CloudTls",
    "CloudTlsError",
    "load_enrolled_tls",
    "resolve_cloud_tls",
    "save_enrolled_tls",
]

TLS_FILENAME = "cloud-tls.json"


class CloudTlsError(InputError):
    """The TLS files cannot be used; the message names the file and the fix."""

    code = "invalid_tls"


@dataclass(frozen=True)
class CloudTls:
    """The PEM paths of the sync channel: the cloud's CA, and the agent's pair for mutual TLS."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.ca is not None or self.cert is not None

    def credentials(self) -> grpc.ChannelCredentials | None:
        """gRPC channel credentials, or None for plain gRPC; CloudTlsError when a file is unusable."""
        if not self.enabled:
            return None
        try:
            return client_credentials(ca=self.ca, cert=self.cert, key=self.key)
        except (OSError, ValueError) as exc:
            raise CloudTlsError(str(exc)) from None

    def as_json(self) -> dict[str, str | None]:
        paths = {"ca": self.ca, "cert": self.cert, "key": self.key}
        return {name: str(path) if path else None for name, path in paths.items()}


def _absolute(path: Path | None) -> Path | None:
    # Recorded paths must not depend on the folder a later `run` starts in.
    return path.expanduser().resolve() if path is not None else None


def save_enrolled_tls(folder: Path, tls: CloudTls) -> None:
    """Record the paths enrollment used (or remove the record when it used none), atomically."""
    target = folder / TLS_FILENAME
    if not tls.enabled:
        target.unlink(missing_ok=True)
        return
    absolute = CloudTls(_absolute(tls.ca), _absolute(tls.cert), _absolute(tls.key))
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(absolute.as_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, target)


def load_enrolled_tls(folder: Path) -> CloudTls:
    """The paths recorded at enrollment; none when enrollment used plain gRPC."""
    source = folder / TLS_FILENAME
    try:
        recorded = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CloudTls()
    except (OSError, ValueError) as exc:
        raise CloudTlsError(
            f"cannot read {source} ({exc}): fix or delete it and give the TLS files with "
            "[cloud] tls_ca/tls_cert/tls_key in the configuration"
        ) from None
    if not isinstance(recorded, dict):
        raise CloudTlsError(
            f"{source} is not a JSON object: delete it and set [cloud] tls_* in the configuration"
        )

    def path(name: str) -> Path | None:
        value = recorded.get(name)
        return Path(value) if isinstance(value, str) and value else None

    return CloudTls(path("ca"), path("cert"), path("key"))


def resolve_cloud_tls(
    section: CloudSection,
    folder: Path,
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> CloudTls:
    """The TLS files in force: options, else the config's [cloud] keys, else enrollment's record."""
    if (cert is None) != (key is None):
        raise CloudTlsError("a client certificate needs both --tls-cert and --tls-key: give both or neither")
    options = CloudTls(ca, cert, key)
    if options.enabled:
        return options
    configured = CloudTls(section.tls_ca, section.tls_cert, section.tls_key)
    if configured.enabled:
        return configured
    return load_enrolled_tls(folder)
