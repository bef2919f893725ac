"""The Linux installer, run for real into a temporary root (no system changes), plus its linters."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LINUX = Path(__file__).resolve().parents[2] / "installers" / "linux"
INSTALL = LINUX / "install.sh"
UNINSTALL = LINUX / "uninstall.sh"
UNIT = LINUX / "dockside-agent.service"


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    """A stand-in agent binary: answers --version like the real one."""
    path = tmp_path / "dist" / "dockside-agent"
    path.parent.mkdir()
    path.write_text('#!/bin/sh\necho "dockside-agent, version 9.8.7"\n')
    path.chmod(0o755)
    return path


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_into_a_root_lays_out_the_service(tmp_path: Path, binary: Path) -> None:
    root = tmp_path / "root"

    result = _run(INSTALL, "--root", str(root), "--binary", str(binary))

    assert result.returncode == 0, result.stderr
    installed = root / "opt" / "dockside-agent" / "dockside-agent"
    assert installed.read_bytes() == binary.read_bytes()
    assert _mode(installed) == 0o755
    assert _mode(root / "var" / "lib" / "dockside-agent") == 0o700
    assert _mode(root / "var" / "log" / "dockside-agent") == 0o750
    config = root / "etc" / "dockside-agent" / "agent.toml"
    assert config.read_text() == (LINUX.parent / "dockside-agent.toml").read_text()
    assert _mode(config) == 0o640
    assert (root / "etc" / "systemd" / "system" / "dockside-agent.service").read_text() == UNIT.read_text()
    # The system commands are shown, not run, under --root.
    assert "would run: useradd --system" in result.stdout
    assert "would run: usermod --append --groups dialout dockside-agent" in result.stdout
    assert "would run: systemctl enable dockside-agent.service" in result.stdout
    assert "would run: systemctl restart dockside-agent.service" in result.stdout
    assert "version 9.8.7" in result.stdout
    assert not list((root / "opt" / "dockside-agent").glob(".*"))  # no half-copied binary left


def test_reinstalling_upgrades_the_binary_and_keeps_the_config(tmp_path: Path, binary: Path) -> None:
    root = tmp_path / "root"
    assert _run(INSTALL, "--root", str(root), "--binary", str(binary)).returncode == 0
    config = root / "etc" / "dockside-agent" / "agent.toml"
    config.write_text('[http]\nbind = "0.0.0.0:8100"\n')
    (root / "var" / "lib" / "dockside-agent" / "agent.db").write_bytes(b"data")
    binary.write_text('#!/bin/sh\necho "dockside-agent, version 9.8.8"\n')

    again = _run(INSTALL, "--root", str(root), "--binary", str(binary), "--no-start")

    assert again.returncode == 0, again.stderr
    assert "keeping the existing" in again.stdout
    assert "would run: systemctl restart" not in again.stdout
    assert config.read_text() == '[http]\nbind = "0.0.0.0:8100"\n'
    assert "9.8.8" in (root / "opt" / "dockside-agent" / "dockside-agent").read_text()
    assert (root / "var" / "lib" / "dockside-agent" / "agent.db").read_bytes() == b"data"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the agent binary with --binary"),
        (["--binary", "/no/such/agent"], "there is no file /no/such/agent"),
        (["--binary", "BINARY", "--config", "/no/such.toml"], "there is no configuration file /no/such.toml"),
        (["--bogus"], "unknown option --bogus"),
        (["--binary", "BROKEN"], "does not run"),
    ],
)
def test_bad_invocations_are_refused_clearly(
    tmp_path: Path, binary: Path, args: list[str], message: str
) -> None:
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    args = [str(binary) if a == "BINARY" else str(broken) if a == "BROKEN" else a for a in args]
    root = tmp_path / "root"

    result = _run(INSTALL, "--root", str(root), *args)

    assert result.returncode == 1
    assert message in result.stderr
    assert not (root / "opt").exists()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A new folder every user may read, outside the clone and pytest's own 0700 temporary folders.

    A clone may sit where other users cannot read it (under /root, or in a `mktemp -d` folder,
    0700), and so may pytest's tmp_path: a test that runs a script as another user copies it here.
    """
    base = next(
        (Path(c) for c in (tempfile.gettempdir(), "/tmp", "/var/tmp") if _open_to_others(Path(c))), None
    )
    if base is None:
        pytest.fail("no temporary folder that every user can reach: set TMPDIR to one (e.g. /tmp)")
    folder = Path(tempfile.mkdtemp(prefix="dockside-installer-", dir=base))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder)


def _open_to_others(folder: Path) -> bool:
    """Whether a user who is neither owner nor in the group can go into `folder`."""
    resolved = folder.resolve()
    return resolved.is_dir() and all(_mode(part) & stat.S_IXOTH for part in (resolved, *resolved.parents))


def _copy_open(source: Path, target: Path, mode: int) -> Path:
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    target.parent.chmod(0o755)  # mkdir's mode is cut by the umask
    shutil.copyfile(source, target)
    target.chmod(mode)
    return target


def test_installing_for_real_needs_root(binary: Path, open_folder: Path) -> None:
    # The scripts as shipped (install.sh with the unit and example config it reads beside it),
    # and the binary, copied where `nobody` can read them: the clone may be closed to others.
    shipped = open_folder / "installers"
    install = _copy_open(INSTALL, shipped / "linux" / "install.sh", 0o755)
    _copy_open(UNIT, shipped / "linux" / UNIT.name, 0o644)
    _copy_open(LINUX.parent / "dockside-agent.toml", shipped / "dockside-agent.toml", 0o644)
    agent = _copy_open(binary, open_folder / "dist" / "dockside-agent", 0o755)
    assert install.read_bytes() == INSTALL.read_bytes()
    command = ["sh", str(install), "--binary", str(agent)]
    if os.geteuid() == 0:  # drop to nobody, as a person without sudo would run it
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=open_folder)
    assert result.returncode == 1, result.stderr
    assert "run it as root" in result.stderr
    # Refused for not being root, not for a file it could not open.
    assert "Permission denied" not in result.stderr
    assert "cannot open" not in result.stderr


def test_uninstall_keeps_config_and_data_unless_purged(tmp_path: Path, binary: Path) -> None:
    root = tmp_path / "root"
    assert _run(INSTALL, "--root", str(root), "--binary", str(binary)).returncode == 0

    kept = _run(UNINSTALL, "--root", str(root))

    assert kept.returncode == 0, kept.stderr
    assert "would run: systemctl disable --now dockside-agent.service" in kept.stdout
    assert not (root / "opt" / "dockside-agent").exists()
    assert not (root / "etc" / "systemd" / "system" / "dockside-agent.service").exists()
    assert (root / "etc" / "dockside-agent" / "agent.toml").exists()
    assert (root / "var" / "lib" / "dockside-agent").is_dir()

    purged = _run(UNINSTALL, "--root", str(root), "--purge")

    assert purged.returncode == 0, purged.stderr
    assert "would run: userdel dockside-agent" in purged.stdout
    for folder in ("etc/dockside-agent", "var/lib/dockside-agent", "var/log/dockside-agent"):
        assert not (root / folder).exists()


def test_the_unit_is_hardened_and_restarts_on_failure() -> None:
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    for setting in (
        "User=dockside-agent",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "SupplementaryGroups=dialout",
        "DeviceAllow=char-ttyUSB rw",
        "ReadWritePaths=/var/lib/dockside-agent /var/log/dockside-agent /opt/dockside-agent",
        "ExecStart=/opt/dockside-agent/dockside-agent run --config /etc/dockside-agent/agent.toml",
    ):
        assert setting in lines, f"{setting} missing from the unit"


def test_the_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install -y shellcheck (.ci/run installs it)"
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(INSTALL), str(UNINSTALL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, binary: Path) -> None:
    root = tmp_path / "root"
    assert _run(INSTALL, "--root", str(root), "--binary", str(binary)).returncode == 0
    installed = root / "opt" / "dockside-agent" / "dockside-agent"
    # verify checks that ExecStart exists: point it at the binary installed under the test root.
    unit = tmp_path / "dockside-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/dockside-agent/dockside-agent", str(installed)))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr, result.stderr
