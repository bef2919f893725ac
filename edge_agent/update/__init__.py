"""Self-update of the one-file agent binary from releases the cloud assigns to its warehouse.

release.py         Release, the SHA-256 and Ed25519 checks a download must pass
slot.py            BinarySlot: stage, atomic swap, trial run with a health deadline, rollback
cloud_releases.py  the cloud's release endpoints, over HTTP with the agent credential
self_update.py     SelfUpdate: poll, verify, wait for a quiet floor, apply, report, restart
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.config import UpdateSection
from edge_agent.http.local_access import AccessPolicy
from edge_agent.http.server import run_agent
from edge_agent.printing.jobs import JobStatus
from edge_agent.update.release import Release, UpdateRefused, signed_message, verify_release
from edge_agent.update.self_update import TRIAL_ENV, SelfUpdate, restart_into
from edge_agent.update.slot import BinarySlot

__all__ = [
    "BinarySlot",
    "Release",
    "SelfUpdate",
    "UpdateRefused",
    "floor_is_busy",
    "restart_into",
    "self_update_for",
    "serve_with_updates",
    "signed_message",
    "verify_release",
]

log = logging.getLogger(__name__)


def self_update_for(section: UpdateSection, data_dir: Path, credential: str) -> SelfUpdate | None:
    """The update cycle when [update] enables it and this process is the one-file binary."""
    if not section.enabled or os.environ.get(TRIAL_ENV):
        return None
    if not getattr(sys, "frozen", False):
        log.warning(
            "update.enabled is set but this agent runs from Python, not the one-file binary: "
            "self-update is off (install the binary with the installers to use it)"
        )
        return None
    return SelfUpdate(
        binary=Path(sys.executable),
        data_dir=data_dir,
        cloud_http=section.cloud_http,
        credential=credential,
        public_key=section.public_key,
        check_interval_s=section.check_interval_s,
        health_deadline_s=section.health_deadline_s,
    )


def floor_is_busy(agent: Agent) -> bool:
    """True while a job waits for its printer or is being sent: no update may start then."""
    counts = agent.queue.jobs.count_by_status()
    return bool(counts.get(JobStatus.HELD, 0) or counts.get(JobStatus.SENDING, 0))


async def serve_with_updates(
    agent: Agent,
    http: str,
    *,
    ready_file: Path | None,
    updates: SelfUpdate | None,
    access: AccessPolicy | None = None,
) -> None:
    """`run_agent`, plus the update watch that stops it when a verified release can go in."""
    if updates is None:
        await run_agent(agent, http, ready_file=ready_file, handle_signals=True, access=access)
        return
    stop, serving = asyncio.Event(), asyncio.Event()
    watching = asyncio.create_task(
        updates.watch(lambda: floor_is_busy(agent), stop, serving), name="self-update"
    )
    try:
        await run_agent(
            agent,
            http,
            ready_file=ready_file,
            handle_signals=True,
            stop=stop,
            on_ready=lambda _: serving.set(),
            access=access,
        )
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
