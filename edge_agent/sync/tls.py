"""TLS for the agent's gRPC channel: the CA that signed the cloud's certificate, and optionally
the agent's own certificate and key when the cloud asks for mutual TLS.

    transport = GrpcTransport(target, credential, channel_credentials=client_credentials(ca=Path("ca.pem")))
"""

from __future__ import annotations

from pathlib import Path

import grpc

__all__ = ["client_credentials"]


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OSError(f"cannot read the {what} {path} ({exc.strerror}): check --tls-* paths") from exc
    if b"-----BEGIN" not in data:
        raise OSError(f"the {what} {path} is not PEM: pass a PEM file (-----BEGIN ...)")
    return data


def client_credentials(
    *, ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """Channel credentials trusting `ca` (or the system roots when None), with a client
    certificate when `cert` and `key` are both given."""
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs both --tls-cert and --tls-key")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca, "TLS CA") if ca is not None else None,
        private_key=_read(key, "TLS key") if key is not None else None,
        certificate_chain=_read(cert, "TLS certificate") if cert is not None else None,
    )
