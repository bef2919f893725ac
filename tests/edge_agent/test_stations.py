"""The packing floor: printer lanes (where a send runs), station lookups and reconfiguration."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dockside.errors import PrinterError, ScaleError
from edge_agent.devices import PrinterConfig, PrinterStatus, ScaleConfig
from edge_agent.stations import PrinterLane, StationFloor


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


class RecordingPrinter:
    """A Printer that records which thread each call ran on; `fail` makes the next send fail."""

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self.sends: list[tuple[bytes, str]] = []
        self.fail: PrinterError | None = None
        self.status_gate = threading.Event()
        self.status_gate.set()
        self.closed = False

    def open(self) -> None:
        pass

    def identify(self) -> str:
        return f"SN-{self.config.id}"

    def send(self, data: bytes) -> None:
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        self.sends.append((data, threading.current_thread().name))

    def status(self) -> PrinterStatus:
        self.status_gate.wait(5)
        return PrinterStatus(ready=True, faults=frozenset(), message="ready")

    def close(self) -> None:
        self.closed = True


def _lane() -> tuple[PrinterLane, RecordingPrinter]:
    config = PrinterConfig.from_dict({"id": "P1", "language": "zpl", "host": "127.0.0.1", "port": 9100})
    printer = RecordingPrinter(config)
    return PrinterLane(config, printer), printer


def test_a_lane_sends_inline_only_while_its_connection_is_known_good() -> None:
    lane, printer = _lane()

    async def scenario() -> None:
        loop_thread = threading.current_thread().name
        lane.connect_in_background()
        await lane.send(b"first")  # nothing known yet: through the lane thread
        await lane.send(b"second")  # the last send worked: inline on the loop
        printer.fail = PrinterError("gone", code="printer_send_failed")
        with pytest.raises(PrinterError):
            await lane.send(b"third")  # inline, and it failed ...
        await lane.send(b"fourth")  # ... so the next one goes through the thread again
        await lane.send(b"fifth")
        printer.status_gate.clear()
        checking = asyncio.create_task(lane.check())  # the lane thread is busy with a status query
        await asyncio.sleep(0)
        sending = asyncio.create_task(lane.send(b"sixth"))
        await asyncio.sleep(0.01)
        assert not sending.done(), "a send must not overtake the lane's queued work"
        printer.status_gate.set()
        await checking
        await sending

        threads = {data: thread for data, thread in printer.sends}
        assert threads[b"first"].startswith("printer-P1")
        assert threads[b"second"] == loop_thread
        assert threads[b"fourth"].startswith("printer-P1")
        assert threads[b"fifth"] == loop_thread
        assert threads[b"sixth"].startswith("printer-P1")
        assert [data for data, _ in printer.sends] == [b"first", b"second", b"fourth", b"fifth", b"sixth"]
        assert lane.hardware_id == "SN-P1"

    try:
        run(scenario)
    finally:
        lane.close()
    assert printer.closed


def test_a_refused_connection_marks_the_lane_offline() -> None:
    lane, printer = _lane()

    async def scenario() -> None:
        printer.fail = PrinterError("printer P1 refused the connection", code="printer_unreachable")
        with pytest.raises(PrinterError):
            await lane.send(b"x")
        assert lane.state == "offline"
        assert "refused" in lane.message
        await lane.send(b"y")
        assert lane.state == "ready"

    try:
        run(scenario)
    finally:
        lane.close()


class IdleScale:
    def __init__(self, config: ScaleConfig) -> None:
        self.config = config
        self.state = "ok"
        self.message = "ok"
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def stable_weight(self, max_age_s: float = 1.0) -> Any:
        return None

    def wait_stable(self, timeout_s: float) -> Any:
        raise ScaleError("the scale is not answering: switch it on", code="scale_not_answering")

    def latest(self) -> Any:
        return None


def _station(code: str, port: int = 9100, scale: str = "/dev/ttyUSB0", **printer: Any) -> dict[str, Any]:
    entry = {
        "id": f"{code}-P",
        "role": "label",
        "language": "zpl",
        "host": "127.0.0.1",
        "port": port,
        **printer,
    }
    return {"code": code, "printers": [entry], "scale": {"protocol": "mt-sics", "port": scale}}


def test_the_floor_keeps_unchanged_devices_and_replaces_changed_ones() -> None:
    printers: list[RecordingPrinter] = []
    scales: list[IdleScale] = []

    def make_printer(config: PrinterConfig) -> RecordingPrinter:
        printers.append(RecordingPrinter(config))
        return printers[-1]

    def make_scale(config: ScaleConfig) -> IdleScale:
        scales.append(IdleScale(config))
        return scales[-1]

    floor = StationFloor(printer_factory=make_printer, scale_factory=make_scale)  # type: ignore[arg-type]
    try:
        floor.configure({"S1": _station("S1"), "S2": _station("S2", scale="/dev/ttyUSB1")})
        first_lane = floor.lane("S1-P")
        assert len(printers) == 2
        assert all(scale.started for scale in scales)

        floor.configure({"S1": _station("S1"), "S2": _station("S2", port=9101, scale="/dev/ttyUSB1")})

        assert floor.lane("S1-P") is first_lane  # unchanged: same connection
        assert len(printers) == 3  # S2's printer moved: a new lane
        assert len(scales) == 2
        floor.configure({"S1": _station("S1")})
        assert floor.get("S2") is None
    finally:
        floor.close()
    assert all(printer.closed for printer in printers)
    assert all(scale.stopped for scale in scales)


def test_a_station_with_a_bad_device_entry_says_what_is_wrong() -> None:
    floor = StationFloor(printer_factory=RecordingPrinter, scale_factory=IdleScale)  # type: ignore[arg-type]
    try:
        floor.configure(
            {
                "S1": {
                    "code": "S1",
                    "printers": [{"id": "P9", "language": "klingon", "host": "h"}],
                    "scale": {"protocol": "mt-sics", "port": "/dev/ttyUSB0", "baudrate": 12345},
                }
            }
        )
        station = floor.get("S1")
        assert station is not None
        with pytest.raises(PrinterError) as no_printer:
            station.printer_for("label")
        assert no_printer.value.code == "printer_not_configured"
        assert "klingon" in no_printer.value.message

        with pytest.raises(ScaleError) as no_scale:
            run(lambda: station.weigh(0.1))  # type: ignore[arg-type, return-value]
        assert no_scale.value.code == "scale_not_configured"
        assert "baudrate" in no_scale.value.message
    finally:
        floor.close()


def test_weighing_waits_for_the_scale_and_passes_its_error_on() -> None:
    floor = StationFloor(printer_factory=RecordingPrinter, scale_factory=IdleScale)  # type: ignore[arg-type]
    try:
        floor.configure({"S1": _station("S1")})
        station = floor.get("S1")
        assert station is not None

        async def weigh() -> None:
            await station.weigh(0.1)

        with pytest.raises(ScaleError) as silent:
            run(weigh)
        assert silent.value.code == "scale_not_answering"
    finally:
        floor.close()
