"""TLS for the gRPC sync service: server certificate and key, and optionally a client CA (mTLS).

    tls = ServerTls.load(cert=Path("cloud.pem"), key=Path("cloud.key"), client_ca=None)
    server.add_secure_port(address, tls.credentials())

With a client CA every agent must also present a certificate that CA signed; the bearer
credential is still checked on every call (the certificate proves the machine, the credential
the enrolled agent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["ServerTls"]


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(
            f"cannot read the {what} {path} ({exc.strerror}): check the path and permissions"
        ) from exc
    if b"-----BEGIN" not in data:
        raise OSError(f"the {what} {path} is not PEM: pass a PEM file (-----BEGIN ...)")
    return data


@dataclass(frozen=True, slots=True)
class ServerTls:
    """PEM bytes for the server side of TLS (the key never leaves this object, nor any log)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def load(cls, *, cert: Path, key: Path, client_ca: Path | None = None) -> ServerTls:
        """Read the PEM files; a missing or non-PEM file fails with what to fix."""
        return cls(
            certificate_chain=_read(cert, "TLS certificate"),
            private_key=_read(key, "TLS key"),
            client_ca=_read(client_ca, "client CA") if client_ca is not None else None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials; with a client CA, clients must present a certificate."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def __repr__(self) -> str:
        return f"ServerTls(mtls={self.client_ca is not None})"
