"""The agent's scheduled work on a real apscheduler clock: printer polls, the scale watchdog,
outbox flushes, status reports, and the lost-label check after a dropped connection.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import ScaleError
from edge_agent.devices import PrinterConfig, PrinterStatus, ScaleConfig, ScaleReader
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import StationFloor
from edge_agent.scheduler import AgentScheduler, ScheduleSettings
from tests.edge_agent.scripted_scale import ScaleScript
from tests.edge_agent.waiting import until


class CountingPrinter:
    """Answers status queries and counts them; `connection_drops` is what a real driver counts."""

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self.checks = 0
        self.connection_drops = 0
        self.sent: list[bytes] = []

    def open(self) -> None:
        pass

    def identify(self) -> str:
        return "SN-" + self.config.id

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def status(self) -> PrinterStatus:
        self.checks += 1
        return PrinterStatus(ready=True, faults=frozenset(), message="ready")

    def close(self) -> None:
        pass


class PollingQueue:
    """The scheduler's view of the print queue: one poll per lane, recorded."""

    def __init__(self) -> None:
        self.polled: list[str] = []

    async def poll(self, lane: PrinterLane) -> None:
        await lane.check()
        self.polled.append(lane.config.id)


STATION = {
    "code": "S1",
    "printers": [{"id": "P1", "language": "zpl", "host": "127.0.0.1", "port": 9100}],
    "scale": {"protocol": "mt-sics", "port": "/dev/null-scale"},
}


# The reader thread is killed on purpose (by an exception outside Exception) to test the watchdog.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_clock_polls_printers_restarts_a_dead_scale_reader_flushes_and_reports() -> None:
    printers: dict[str, CountingPrinter] = {}

    def printer(config: PrinterConfig) -> CountingPrinter:
        printers[config.id] = CountingPrinter(config)
        return printers[config.id]

    # The first open kills the reader thread, as a driver bug outside Exception would.
    dying_once = ScaleScript(opens=[SystemExit("driver bug")], grams=1000)

    def reader(config: ScaleConfig) -> ScaleReader:
        return ScaleReader(config, poll_interval_s=0.01, scale_factory=dying_once.driver)

    floor = StationFloor(printer_factory=printer, scale_factory=reader)
    flushes: list[int] = []
    reports: list[int] = []

    async def scenario() -> None:
        floor.configure({"S1": STATION})
        queue = PollingQueue()
        clock = AgentScheduler(
            floor,
            queue,  # type: ignore[arg-type]
            flush_outbox=lambda: flushes.append(1),
            report_status=lambda: reports.append(1),
            settings=ScheduleSettings(
                printer_poll_s=0.05, scale_watchdog_s=0.05, outbox_flush_s=0.05, report_s=0.05
            ),
        )
        clock.start()
        try:
            await until(lambda: clock.polls >= 3, what="three printer polls")
            await until(lambda: clock.scale_restarts == 1, what="the dead reader to be restarted")
            (_, scale), *_ = floor.scales()
            await until(lambda: scale.stable_weight() is not None, what="the restarted reader's weight")
            await until(lambda: flushes and reports, what="an outbox flush and a status report")
        finally:
            clock.stop()
        assert printers["P1"].checks >= 3
        assert set(queue.polled) == {"P1"}

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        floor.close()


def test_a_label_followed_by_a_dropped_connection_is_in_doubt(tmp_path: Path) -> None:
    config = PrinterConfig(id="P1", language="zpl", host="127.0.0.1")
    printer = CountingPrinter(config)
    lane = PrinterLane(config, printer)

    async def scenario() -> None:
        assert await lane.check() == []
        lane.unconfirmed.append("job-a")
        assert await lane.check() == []  # answered on the same connection: it took job-a
        assert list(lane.unconfirmed) == []
        lane.unconfirmed.append("job-b")
        printer.connection_drops += 1  # the printer closed the connection after job-b
        assert await lane.check() == ["job-b"]
        assert await lane.check() == []  # reported once

    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        lane.close()


def test_held_message_names_the_printer_station_and_the_fix() -> None:
    config = PrinterConfig(id="S1-label", language="zpl", host="127.0.0.1", model="ZD421")
    lane = PrinterLane(config, CountingPrinter(config))
    try:
        lane._mark("fault", "paper out", {"paper_out"})
        assert lane.held_message("S1") == (
            "ZD421 S1-label at S1 is out of labels: load labels, then the label prints by itself"
        )
        lane._mark("fault", "two faults", {"paused", "head_open"})
        message = lane.held_message("S1")
        assert message.index("print head open") < message.index("paused")  # the order to fix them in
        lane._mark("offline", "gone", {"offline"})
        assert "is offline: check that it is switched on" in lane.held_message("S1")
    finally:
        lane.close()


@pytest.mark.parametrize("unused", [None])
def test_scale_reader_died_is_false_while_running_and_after_stop(unused: Any) -> None:
    reader = ScaleReader(
        ScaleConfig(protocol="mt-sics", port="/nonexistent/scale"), reopen_backoff_s=(0.01, 0.02)
    )
    reader.start()
    try:
        assert not reader.died
    finally:
        reader.stop()
    assert not reader.died
    with pytest.raises(ScaleError):
        reader.zero()


def test_the_clock_purges_personal_data_and_survives_a_failed_purge() -> None:
    floor = StationFloor()
    purges: list[int] = []

    def purge() -> None:
        purges.append(1)
        if len(purges) == 1:
            raise RuntimeError("disk hiccup")

    async def scenario() -> None:
        clock = AgentScheduler(
            floor,
            PollingQueue(),  # type: ignore[arg-type]
            flush_outbox=lambda: None,
            report_status=lambda: None,
            purge_personal_data=purge,
            settings=ScheduleSettings(privacy_purge_s=0.05),
        )
        clock.start()
        try:
            await until(lambda: len(purges) >= 2, what="a purge after a failed one")
        finally:
            clock.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 20))
    finally:
        floor.close()
