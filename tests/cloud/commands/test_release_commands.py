"""`dockside-cloud keygen-release` and `sign-release`: a key pair, and signatures agents accept."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from cloud.commands.cli import main
from edge_agent.update.release import Release, UpdateRefused, verify_release

BINARY = b"\x7fELF pretend agent build " * 1000


def _keygen(runner: CliRunner, path: Path) -> str:
    result = runner.invoke(main, ["keygen-release", str(path)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _sign(runner: CliRunner, key: Path, version: str, binary: Path) -> tuple[int, str]:
    result = runner.invoke(main, ["sign-release", "--key", str(key), "--version", version, str(binary)])
    return result.exit_code, result.output.strip()


def test_a_signed_release_verifies_with_the_printed_public_key(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "release.pem"
    public = _keygen(runner, key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    binary = tmp_path / "dockside-agent"
    binary.write_bytes(BINARY)
    status, signature = _sign(runner, key, "1.4.2", binary)
    assert status == 0, signature
    release = Release("1.4.2", hashlib.sha256(BINARY).hexdigest(), signature, len(BINARY))
    verify_release(BINARY, release, public)  # what an agent checks before installing
    with pytest.raises(UpdateRefused):  # the signature covers the version too
        verify_release(BINARY, Release("1.4.3", release.sha256, signature, len(BINARY)), public)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "release.pem"
    _keygen(runner, key)
    before = key.read_bytes()
    result = runner.invoke(main, ["keygen-release", str(key)])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert key.read_bytes() == before
    missing = runner.invoke(main, ["keygen-release", str(tmp_path / "no" / "such" / "k.pem")])
    assert missing.exit_code == 1
    assert "check the folder exists" in missing.output


def test_bad_key_and_bad_version_are_refused_clearly(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "release.pem"
    _keygen(runner, key)
    binary = tmp_path / "dockside-agent"
    binary.write_bytes(BINARY)
    status, output = _sign(runner, key, "latest", binary)
    assert status == 1
    assert "is not a release version" in output
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    status, output = _sign(runner, junk, "1.0.0", binary)
    assert status == 1
    assert "is not an unencrypted PEM private key" in output
    assert "Traceback" not in output
