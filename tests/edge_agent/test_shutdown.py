"""The agent stops in bounded steps: a hung step is named in the log and left behind.

Seen in CI: an agent stopping for an update logged "Scheduler has been shut down" and then
nothing for 200 s. Whatever hangs, the stop must end and say which step it left.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from edge_agent import shutdown
from edge_agent.agent import AgentSettings
from edge_agent.shutdown import BoundedExecutor, bounded_step, in_daemon_thread, threads_abandoned
from edge_agent.sync import MemoryTransport
from tests.edge_agent.agent_harness import RunningAgent


async def _swallows_cancellation(release: asyncio.Event) -> None:
    while not release.is_set():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # the kind of step that hung: it ignores being cancelled
            continue


def test_a_step_that_ignores_its_cancellation_is_left_behind_after_its_limit(caplog) -> None:
    async def main() -> tuple[bool, float]:
        release = asyncio.Event()
        started = time.monotonic()
        finished = await bounded_step("a stubborn step", _swallows_cancellation(release), limit_s=0.2)
        took = time.monotonic() - started
        release.set()
        await asyncio.sleep(0)
        return finished, took

    with caplog.at_level(logging.ERROR, logger="edge_agent.shutdown"):
        finished, took = asyncio.run(main())
    assert finished is False
    assert took < 5
    assert "a stubborn step did not finish within 0.2 s" in caplog.text


def test_a_step_that_fails_is_logged_and_the_stop_goes_on(caplog) -> None:
    async def broken() -> None:
        raise OSError("the printer's socket is gone")

    with caplog.at_level(logging.ERROR, logger="edge_agent.shutdown"):
        assert asyncio.run(bounded_step("closing a printer", broken(), limit_s=1)) is True
    assert "closing a printer failed" in caplog.text
    assert "socket is gone" in caplog.text


def test_a_daemon_thread_hands_back_its_result_and_its_error() -> None:
    async def main() -> tuple[int, str]:
        value = await in_daemon_thread("sum", lambda: 40 + 2)
        try:
            await in_daemon_thread("fail", lambda: int("not a number"))
        except ValueError as exc:
            return value, str(exc)
        return value, ""

    value, error = asyncio.run(main())
    assert value == 42
    assert "not a number" in error


def test_the_executor_leaves_a_stuck_thread_and_logs_where_it_was(caplog, monkeypatch) -> None:
    monkeypatch.setattr(shutdown, "_abandoned", [])
    release = threading.Event()

    def stuck_in_a_driver() -> None:
        release.wait(30)

    executor = BoundedExecutor(thread_name_prefix="test-agent", limit_s=0.3)
    executor.submit(stuck_in_a_driver)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.ERROR, logger="edge_agent.shutdown"):
            executor.shutdown(wait=True)
        took = time.monotonic() - started
    finally:
        release.set()
    assert took < 5
    assert "stuck_in_a_driver" in caplog.text  # the stack says what hung
    assert [name for name in threads_abandoned() if name.startswith("test-agent")]


def test_an_executor_whose_threads_finish_abandons_none(monkeypatch) -> None:
    monkeypatch.setattr(shutdown, "_abandoned", [])
    executor = BoundedExecutor(limit_s=5)
    assert executor.submit(lambda: 7).result() == 7
    executor.shutdown(wait=True)
    assert threads_abandoned() == []


def test_an_agent_whose_devices_hang_on_close_still_stops(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(shutdown, "STEP_LIMIT_S", 0.5)
    release = threading.Event()
    agent = RunningAgent(tmp_path, MemoryTransport(), AgentSettings(report_interval_s=3600)).start()
    try:
        assert agent.agent is not None
        floor = agent.agent.floor
        close = floor.close

        def hangs() -> None:
            release.wait(30)
            close()

        monkeypatch.setattr(floor, "close", hangs)
        # And a label worker warm-up that never ends, as if its process never started.
        never = asyncio.Event()
        agent.call_on_loop(lambda: setattr(agent.agent, "_warming", asyncio.ensure_future(never.wait())))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="edge_agent.shutdown"):
            agent.stop()  # asserts the agent's thread ended
        assert time.monotonic() - started < 15
    finally:
        release.set()
    assert "closing the printers and scales did not finish" in caplog.text
    assert "the label worker's warm-up did not finish" in caplog.text


def test_an_agent_that_stops_cleanly_names_no_step(tmp_path, caplog) -> None:
    agent = RunningAgent(tmp_path, MemoryTransport(), AgentSettings(report_interval_s=3600)).start()
    with caplog.at_level(logging.ERROR, logger="edge_agent.shutdown"):
        agent.stop()
    assert "stopping:" not in caplog.text
