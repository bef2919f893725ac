"""Self-update: learn of the assigned release, verify it, swap at a quiet moment, try it, keep or roll back.

While the agent runs, `SelfUpdate.watch` polls the cloud, downloads and verifies an assigned
release and stages it; then it waits until no job is held or sending and asks the agent to
stop (the HTTP server drains, the devices close). With the agent stopped, `apply` runs the
staged binary as a trial child on a spare port: unhealthy within the deadline, it is set aside
and the current binary restarts; healthy, it is swapped in and the process execs into it (on
Windows the service manager restarts it). Every outcome is reported to the cloud.

A marker file (`<data dir>/update-trial.json`) is written before the swap; the new binary marks
it started on its first start and removes it once serving. If that start dies before serving
(the service manager restarts it), the second start finds the marker started and rolls back to
`.previous`: a station always ends up on a binary that serves.
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
        self.probation = False  # this run is the first of a swapped-in release

    # -- while the agent runs -----------------------------------------------------------------

    async def watch(
        self, busy: Callable[[], bool], stop: asyncio.Event, serving: asyncio.Event | None = None
    ) -> None:
        """Poll for a release until one is staged and the floor is quiet, then set `stop`."""
        if serving is not None:
            await serving.wait()
            await asyncio.to_thread(self.confirm)
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
        """Try the staged release; swap it in if healthy (then exec at once), else reject it; report.

        Returns "installed" (the binary was swapped: the caller must exec it now, doing nothing
        else) or "rolled_back" (the current binary is untouched).
        """
        release = self.staged
        assert release is not None, "apply needs a staged release"
        self.staged = None
        result = self.slot.trial(
            trial_args,
            release.version,
            deadline_s=self.health_deadline_s,
            probe=self.probe,
            env={**os.environ, TRIAL_ENV: "1"},
        )
        if not result.healthy:
            self.slot.reject()
            self._remember_refused(release.version)
            message = (
                f"release {release.version} failed its health check ({result.reason}); "
                f"kept {self.current_version}"
            )
            log.error("%s\n%s", message, result.output)
            self._report(release.version, "rolled_back", message)
            return "rolled_back"
        # Reported before the swap: after it, this process must not import or run anything.
        self._report(release.version, "installed", f"{self.current_version} -> {release.version}")
        self._write_marker(release.version)
        self.slot.swap()
        return "installed"

    def recover(self) -> bool:
        """At start: roll back a swapped-in release that failed to come up. True when it did.

        The marker written before the swap is marked `started` by the new binary's first start
        and removed once it serves (`confirm`); finding it already `started` means that start
        never reached serving, so the previous binary is put back.
        """
        if os.environ.get(TRIAL_ENV):
            return False
        marker_path = self.data_dir / MARKER
        try:
            marker = json.loads(marker_path.read_text())
            version = str(marker["version"])
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError, OSError):
            marker, version = {"started": True}, "unknown"
        if version != self.current_version and version != "unknown":
            self._clear_marker()  # the swap never happened (stopped before it): nothing to undo
            return False
        if not marker.get("started"):
            marker_path.write_text(json.dumps({**marker, "started": True}))
            self.probation = True
            return False
        if self.slot.previous.is_file():
            self.slot.roll_back()
        self._remember_refused(version)
        self._clear_marker()
        self._report(version, "rolled_back", f"release {version} did not come up after the swap; rolled back")
        return True

    def confirm(self) -> None:
        """The swapped-in release serves: end its probation."""
        if self.probation:
            self._clear_marker()
            self.probation = False
            log.warning("agent release %s is serving; update complete", self.current_version)

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
