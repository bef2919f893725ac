"""The label worker does not outlive the agent: an agent process killed with SIGKILL while its
worker is busy drawing a label (where the pipe's EOF would go unseen for minutes) takes the
worker with it. Real processes: a parent python that starts a LabelRenderer, and a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.edge_agent.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]

PARENT = """
import asyncio, sys
from edge_agent.printing.label_renderer import LabelRenderer
from tests.edge_agent.printing.test_label_worker_lifetime import mark_then_sleep

async def main():
    renderer = LabelRenderer(time_limit_s=60, preload=())
    await renderer.warm()
    print(renderer.pid, flush=True)
    await renderer.render("a label that never ends", mark_then_sleep, sys.argv[1], 120.0)

asyncio.run(main())
"""


def mark_then_sleep(path: str, seconds: float) -> bytes:
    """In the worker: say it is drawing (a file, renamed into place whole so the test never reads
    it half written), then stay busy, never reading its pipe."""
    Path(f"{path}.tmp").write_text(str(os.getpid()))
    os.replace(f"{path}.tmp", path)
    time.sleep(seconds)
    return b""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")  # a zombie has exited; its new parent has not reaped it yet


def test_a_sigkilled_agent_takes_its_busy_label_worker_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "drawing"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(marker)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    worker_pid = 0
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        wait_until(marker.exists, timeout=30, what="the worker to start drawing")
        assert int(marker.read_text()) == worker_pid
        assert not _gone(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: _gone(worker_pid), timeout=10, what="the worker to end with its agent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if worker_pid and not _gone(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
        if parent.stdout is not None:
            parent.stdout.close()
