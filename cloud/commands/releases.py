"""`dockside-cloud keygen-release` and `sign-release`: the release tooling's side of agent self-update.

The private key stays with whoever builds releases (a build machine, a vault), never on the
cloud: the cloud and the agents hold only the public key and verify. These commands wrap
`cloud.fleet.releases.generate_release_key` and `sign_release`; `python -m cloud.fleet.releases` still works.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from cloud.fleet.releases import PUBLIC_KEY_ENV, generate_release_key, sign_release_digest
from dockside.errors import DocksideError

__all__ = ["keygen_release_command", "sign_release_command"]


@click.command("keygen-release")
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
def keygen_release_command(private_key: Path) -> None:
    """Make a release signing key: write the private key to PRIVATE_KEY (PEM, mode 0600) and print
    the public key (base64) on stdout.

    Give the public key to the cloud as $DOCKSIDE_RELEASE_PUBLIC_KEY and to agents as
    [update] public_key; keep PRIVATE_KEY secret. An existing file is never overwritten.
    """
    private, public = generate_release_key()
    try:
        # O_EXCL: replacing a key in use would orphan every release signed with it.
        fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(
            f"{private_key} already exists: keep that key, or choose another file name for a new one"
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot create {private_key} ({exc.strerror}): check the folder exists and is writable"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    click.echo(public)
    click.echo(
        f"private key written to {private_key}; set ${PUBLIC_KEY_ENV} on the cloud and "
        "[update] public_key on agents to the line above",
        err=True,
    )


@click.command("sign-release")
@click.option(
    "--key",
    "private_key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The release signing key (PEM) written by `dockside-cloud keygen-release`.",
)
@click.option(
    "--version", "version", required=True, help="The release's version, e.g. 1.4.2 (what agents report)."
)
@click.argument("binary", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def sign_release_command(private_key: Path, version: str, binary: Path) -> None:
    """Sign the agent binary BINARY as release --version and print the signature (base64).

    Upload the same bytes with that version and signature (POST /api/v1/releases); any change to
    the bytes or the version makes the cloud and the agents refuse it.
    """
    try:
        # Hashed in blocks: an agent binary need not fit in memory to be signed.
        with binary.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        signature = sign_release_digest(private_key.read_bytes(), version, digest)
    except DocksideError as exc:
        raise click.ClickException(exc.message) from None
    except (ValueError, TypeError):
        raise click.ClickException(
            f"{private_key} is not an unencrypted PEM private key: use the file `dockside-cloud "
            "keygen-release` wrote"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename} ({exc.strerror}): check the path") from None
    click.echo(signature)
