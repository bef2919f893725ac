"""Self-update: learn of the assigned release, verify it, swap at a quiet moment, try it, keep or roll back.

While the agent runs, `SelfUpdate.watch` polls the cloud, downloads and verifies an assigned
release and stages it; then it waits until no job is held or sending and asks the agent to
stop (the HTTP server drains, the devices close). With the agent stopped, `apply` swaps the
binary, runs the new one as a trial child against a spare port, and either keeps it or renames
the previous one back; it reports the outcome to the cloud and restarts the process into
whichever binary is now current (exec on POSIX; on Windows the service manager restarts it).

A marker file (`<data dir>/update-trial.json`) is written before the swap and removed once the
trial is decided, so if the power goes mid-trial the next start rolls back to the proven binary.
Versions that were refused or rolled back are remembered (`update-refused.json`) and not tried
again until the cloud assigns a different one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from dockside import __version__
from edge_agent.update.cloud_releases import CloudReleases, report_now
from edge_agent.update.release import Release, UpdateRefused, verify_release
from edge_agent.update.slot import BinarySlot, Probe, status_probe

__all__ = ["TRIAL_ENV", "SelfUpdate", "restart_into"]

log = logging.getLogger(__name__)

TRIAL_ENV = "DOCKSIDE_AGENT_UPDATE_TRIAL"  # set in a trial child: it must not update or recover
MARKER = "update-trial.json"
REFUSED = "update-refused.json"


def restart_into(binary: Path) -> None:
    """Replace this process with `binary` and the same arguments (the service manager restarts on Windows)."""
    if os.name == "nt":
        sys.exit(75)
    os.execv(binary, [str(binary), *sys.argv[1:]])  # noqa: S606 - our own binary, our own arguments


class SelfUpdate:
    """The update cycle for one agent binary, its data dir and its cloud."""

    def __init__(
        self,
        *,
        binary: Path,
        data_dir: Path,
        cloud_http: str,
        credential: str,
        public_key: str,
        check_interval_s: float = 300.0,
        health_deadline_s: float = 60.0,
        current_version: str = __version__,
        probe: Probe = status_probe,
    ) -> None:
        self.slot = BinarySlot(binary)
        self.data_dir = data_dir
        self.cloud_http = cloud_http
        self.credential = credential
        self.public_key = public_key
        self.check_interval_s = check_interval_s
        self.health_deadline_s = health_deadline_s
        self.current_version = current_version
        self.probe = probe
        self.staged: Release | None = None

    # -- while the agent runs -----------------------------------------------------------------

    async def watch(self, busy: Callable[[], bool], stop: asyncio.Event) -> None:
        """Poll for a release until one is staged and the floor is quiet, then set `stop`."""
        releases = CloudReleases(self.cloud_http, self.credential)
        try:
            while self.staged is None:
                try:
                    await self.check_once(releases)
                except (httpx.HTTPError, OSError) as exc:
                    log.warning("cannot check for agent updates (%s); trying again later", exc)
                except UpdateRefused as exc:
                    log.error("%s", exc.message)
                if self.staged is None:
                    await asyncio.sleep(self.check_interval_s)
        finally:
            await releases.close()
        # The jobs table has no change signal to wait on; a held or printing job delays the update.
        while busy():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        log.warning("stopping to install agent release %s", self.staged.version)
        stop.set()

    async def check_once(self, releases: CloudReleases) -> Release | None:
        """Download and verify the assigned release if it is new to us; stage it when it passes."""
        release = await releases.assigned()
        if release is None or release.version == self.current_version or release.version in self.refused():
            return None
        blob = await releases.download(release)
        try:
            verify_release(blob, release, self.public_key)
        except UpdateRefused as exc:
            log.error("%s", exc.message)
            self._remember_refused(release.version)
            await releases.report(release.version, "refused", f"{exc.reason}: {exc.message}")
            return None
        self.slot.stage(blob)
        self.staged = release
        log.warning(
            "agent release %s downloaded and verified; installing when no job is printing", release.version
        )
        return release

    # -- with the agent stopped ---------------------------------------------------------------

    def apply(self, trial_args: Sequence[str]) -> str:
        """Swap in the staged release, try it, keep it or roll back; report; return the outcome."""
        release = self.staged
        assert release is not None, "apply needs a staged release"
        self._write_marker(release.version)
        self.slot.swap()
        result = self.slot.trial(
            trial_args,
            release.version,
            deadline_s=self.health_deadline_s,
            probe=self.probe,
            env={**os.environ, TRIAL_ENV: "1"},
        )
        if result.healthy:
            outcome, message = "installed", f"{self.current_version} -> {release.version}"
        else:
            self.slot.roll_back()
            self._remember_refused(release.version)
            outcome = "rolled_back"
            message = (
                f"release {release.version} failed its health check ({result.reason}); "
                f"kept {self.current_version}"
            )
            log.error("%s\n%s", message, result.output)
        self._clear_marker()
        self._report(release.version, outcome, message)
        self.staged = None
        return outcome

    def recover(self) -> bool:
        """At start: if a trial was cut short (power loss, kill), roll back. True when it did."""
        if os.environ.get(TRIAL_ENV):
            return False
        marker = self.data_dir / MARKER
        try:
            version = str(json.loads(marker.read_text())["version"])
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, OSError):
            version = "unknown"
        if self.slot.previous.is_file():
            self.slot.roll_back()
        self._remember_refused(version)
        self._clear_marker()
        self._report(version, "rolled_back", f"the trial of release {version} was interrupted; rolled back")
        return True

    def _report(self, version: str, outcome: str, message: str) -> None:
        try:
            report_now(self.cloud_http, self.credential, version, outcome, message)
        except httpx.HTTPError as exc:
            log.warning("could not report update outcome %s of %s to the cloud (%s)", outcome, version, exc)

    def _write_marker(self, version: str) -> None:
        (self.data_dir / MARKER).write_text(json.dumps({"version": version, "from": self.current_version}))

    def _clear_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / MARKER).unlink()

    def refused(self) -> set[str]:
        """Versions this agent refused or rolled back (not tried again)."""
        try:
            return set(json.loads((self.data_dir / REFUSED).read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def _remember_refused(self, version: str) -> None:
        versions = sorted(self.refused() | {version})[-50:]
        (self.data_dir / REFUSED).write_text(json.dumps(versions))
