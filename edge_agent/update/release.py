"""An agent release as the cloud offers it, and the checks a download must pass before it is run.

The signature is Ed25519 over `signed_message(version, sha256)`, not over the bytes alone, so a
signed binary cannot be replayed under another version number. The release tooling signs with
the private key (`dockside-cloud sign-release`); agents hold only the public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dockside.errors import DocksideError

__all__ = ["Release", "UpdateRefused", "signed_message", "verify_release", "version_key"]

_VERSION = re.compile(r"^\d+(\.\d+){1,3}([a-z0-9.+-]{0,32})$")


class UpdateRefused(DocksideError):
    """A release that must not be installed (bad checksum, bad signature, unusable answer)."""

    code = "update_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, code=self.code)
        self.reason = reason


def signed_message(version: str, sha256: str) -> bytes:
    """The exact bytes a release signature covers."""
    return f"dockside-agent-release\n{version}\n{sha256.lower()}\n".encode()


def version_key(version: str) -> tuple[int, ...]:
    """A sortable key for "1.2.3" (pre-release suffixes sort with their base)."""
    numbers = re.match(r"^[\d.]+", version)
    return tuple(int(part) for part in (numbers.group(0) if numbers else "0").strip(".").split("."))


@dataclass(frozen=True, slots=True)
class Release:
    """One assigned release: what to download and how to check it."""

    version: str
    sha256: str
    signature: str  # base64 Ed25519 signature of signed_message(version, sha256)
    size: int

    @classmethod
    def from_answer(cls, body: Any) -> Release:
        """Parse the cloud's answer; UpdateRefused when it is not a release."""
        try:
            release = cls(
                version=str(body["version"]),
                sha256=str(body["sha256"]).lower(),
                signature=str(body["signature"]),
                size=int(body["size"]),
            )
        except (KeyError, TypeError, ValueError):
            raise UpdateRefused(
                "the cloud's release answer lacks version, sha256, signature or size: upgrade the cloud",
                reason="bad_answer",
            ) from None
        if not _VERSION.match(release.version) or not re.fullmatch(r"[0-9a-f]{64}", release.sha256):
            raise UpdateRefused(
                f"the cloud offered an unusable release {release.version!r}: republish it",
                reason="bad_answer",
            )
        return release


def verify_release(blob: bytes, release: Release, public_key: str) -> None:
    """Raise UpdateRefused unless `blob` has the release's SHA-256 and a valid signature."""
    digest = hashlib.sha256(blob).hexdigest()
    if len(blob) != release.size or digest != release.sha256:
        raise UpdateRefused(
            f"release {release.version} was downloaded with SHA-256 {digest} ({len(blob)} bytes) but "
            f"the cloud published {release.sha256} ({release.size} bytes): it was not installed; "
            "republish the release if this repeats",
            reason="bad_checksum",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(
            base64.b64decode(release.signature, validate=True), signed_message(release.version, digest)
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise UpdateRefused(
            f"release {release.version} is not signed by the release key this agent trusts: it was not "
            "installed; sign it with the release tooling's key, or fix update.public_key",
            reason="bad_signature",
        ) from None
