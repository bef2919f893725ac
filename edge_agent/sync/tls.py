"""TLS for the agent's gRPC channel: the CA that signed the cloud's certificate, and optionally
the agent's own certificate and key when the cloud asks for mutual TLS.

    transport = GrpcTransport(target, credential, channel_credentials=client_credentials(ca=Path("ca.pem")))
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import grpc

__all__ = ["TlsPaths", "client_credentials", "handshake_hint"]


class TlsPaths(Protocol):
    """Where the sync channel's TLS files are (edge_agent.sync.cloud_tls.CloudTls is one)."""

    @property
    def ca(self) -> Path | None: ...

    @property
    def cert(self) -> Path | None: ...


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


def handshake_hint(details: str, tls: TlsPaths | None, *, enabled: bool) -> str | None:
    """What to fix when gRPC's `details` show a TLS mismatch with the cloud; None when they do not.

    `enabled`: this agent speaks TLS to the cloud; `tls` says with which files (when known).
    """
    where = "--tls-ca or [cloud] tls_ca"
    ca = f"the TLS CA {tls.ca} ({where})" if tls is not None and tls.ca else f"the TLS CA ({where})"
    if not enabled:
        # A TLS server drops a plain HTTP/2 client's connection before any answer.
        if "Socket closed" in details:
            return (
                "the cloud closed the connection before answering: if it serves TLS, give the agent the CA "
                f"that signed its certificate ({where})"
            )
        return None
    if "WRONG_VERSION_NUMBER" in details:
        return (
            f"the cloud does not speak TLS on this port but this agent uses TLS with {ca}: point the "
            "cloud address at its TLS port, or drop the TLS settings if the cloud runs without TLS"
        )
    if "CERTIFICATE_VERIFY_FAILED" in details or "not in peer certificate" in details:
        return (
            f"cannot verify the cloud's certificate: check {ca}: it must be the CA that signed the "
            "cloud's certificate, and that certificate must name the host in the cloud address "
            "(and be valid today)"
        )
    if "andshake" in details or "SSL_ERROR" in details:
        client = (
            f"and that the cloud trusts this PC's certificate {tls.cert}"
            if tls is not None and tls.cert
            else "and, if the cloud asks for mutual TLS, give this PC's certificate (--tls-cert/--tls-key "
            "or [cloud] tls_cert/tls_key)"
        )
        return f"the TLS handshake with the cloud failed: check {ca} {client}"
    return None
