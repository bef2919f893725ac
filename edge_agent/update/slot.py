"""The installed binary and its neighbours: stage a new one, swap atomically, try it, roll back.

    <binary>            the one the service manager starts; always present and runnable
    <binary>.new        a verified download waiting for the swap
    <binary>.previous   the binary before the last swap, for rollback
    <binary>.failed     the last release that failed its trial (kept for a post-mortem)

The trial runs the staged binary as a child (`run --http 127.0.0.1:0 --ready-file F` plus the
caller's options) and calls it healthy when it answers its status with the expected version
before the deadline; a release that fails never replaces anything. The swap hard-links the
current binary to `.previous` and then renames `.new` over the current one: each step is one
atomic rename, so at every instant `<binary>` is a complete binary (the old or the new), and a
power cut mid-update leaves a station with one that starts.

A one-file binary reads its own file lazily while it runs (PyInstaller re-opens the archive by
path for each late import), so nothing may run in the old process between the swap and the
exec into the new binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

__all__ = ["BinarySlot", "TrialResult", "status_probe"]

Probe = Callable[[str, str], str | None]  # (http address, expected version) -> None if healthy, else why


def status_probe(address: str, version: str) -> str | None:
    """Healthy when `GET /healthz` (open: no credential needed) answers 200 with the expected version."""
    try:
        response = httpx.get(f"http://{address}/healthz", timeout=5)
    except httpx.HTTPError as exc:
        return f"its status page did not answer ({exc})"
    if response.status_code != 200:
        return f"its status page answered {response.status_code}"
    try:
        running = response.json().get("version")
    except ValueError:
        return "its status page did not answer JSON"
    return None if running == version else f"it reports version {running!r}, not {version!r}"


class TrialResult:
    """How a trial run ended: healthy, or why not, with the child's last output."""

    def __init__(self, healthy: bool, reason: str = "", output: str = "") -> None:
        self.healthy = healthy
        self.reason = reason
        self.output = output


class BinarySlot:
    """The agent binary at `path` and its `.new`, `.previous` and `.failed` neighbours."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.staged = path.with_name(path.name + ".new")
        self.previous = path.with_name(path.name + ".previous")
        self.failed = path.with_name(path.name + ".failed")

    def stage(self, blob: bytes) -> Path:
        """Write a verified download next to the binary (same filesystem, so the swap is a rename)."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".download")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o755)  # noqa: S103 - a program the service user must be able to run
            os.replace(tmp, self.staged)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return self.staged

    def swap(self) -> None:
        """Make the staged binary current, keeping the current one as `.previous`."""
        if not self.staged.is_file():
            raise FileNotFoundError(f"no staged release at {self.staged}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.previous)
        os.link(self.path, self.previous)
        os.replace(self.staged, self.path)
        self._sync_folder()

    def reject(self) -> None:
        """Keep a staged release that failed its trial as `.failed`; the current binary is untouched."""
        os.replace(self.staged, self.failed)

    def roll_back(self) -> None:
        """Put `.previous` back as the current binary; the rejected one is kept as `.failed`."""
        if not self.previous.is_file():
            raise FileNotFoundError(f"no previous binary at {self.previous} to roll back to")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.failed)
        os.link(self.path, self.failed)
        os.replace(self.previous, self.path)
        self._sync_folder()

    def _sync_folder(self) -> None:
        if os.name == "nt":
            return
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def trial(
        self,
        args: Sequence[str],
        version: str,
        *,
        deadline_s: float,
        probe: Probe = status_probe,
        env: Mapping[str, str] | None = None,
    ) -> TrialResult:
        """Run the staged binary with `args` as a child and judge its health within the deadline."""
        with tempfile.TemporaryDirectory(prefix="dockside-update-") as folder:
            ready = Path(folder) / "ready.json"
            log_path = Path(folder) / "trial.log"
            with log_path.open("wb") as log:
                child = subprocess.Popen(  # noqa: S603 - our own binary, our own arguments
                    [str(self.staged), *args, "--ready-file", str(ready)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=dict(os.environ if env is None else env),
                )
            try:
                result = self._judge(child, ready, version, deadline_s, probe)
            finally:
                _stop(child)
            result.output = log_path.read_text(errors="replace")[-4000:]
            return result

    def _judge(
        self, child: subprocess.Popen[bytes], ready: Path, version: str, deadline_s: float, probe: Probe
    ) -> TrialResult:
        deadline = time.monotonic() + deadline_s
        reason = "it did not report ready"
        while time.monotonic() < deadline:
            if child.poll() is not None:
                return TrialResult(False, f"it exited with status {child.returncode} during its trial")
            if ready.exists():
                try:
                    address = str(json.loads(ready.read_text())["http"])
                except (ValueError, KeyError, OSError):
                    address = ""
                if address:
                    problem = probe(address, version)
                    if problem is None:
                        return TrialResult(True)
                    reason = problem
            time.sleep(0.1)  # polling a child process; there is nothing to wait on
        return TrialResult(False, f"{reason} within {deadline_s:g} s")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=15)
