"""The packing floor: printer lanes (where a send runs), station lookups and reconfiguration."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from dockside.errors import PrinterError, PrinterUnreachable, ScaleError
from edge_agent.devices import PrinterConfig, PrinterStatus, ScaleConfig, WeightReading
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.stations import StationFloor
from edge_agent.devices.zpl import ZplPrinter

LABEL = b"^XA^FO50,50^FDDEMO-0001^FS^XZ"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


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


def test_a_lane_without_a_nonblocking_driver_sends_everything_in_its_thread_in_order() -> None:
    lane, printer = _lane()

    async def scenario() -> None:
        lane.connect_in_background()
        for data in (b"first", b"second"):
            await lane.send(data)
        printer.fail = PrinterError("gone", code="printer_send_failed")
        with pytest.raises(PrinterError):
            await lane.send(b"third")
        assert lane.state == "fault"
        await lane.send(b"fourth")
        assert lane.state == "ready"

        assert [data for data, _ in printer.sends] == [b"first", b"second", b"fourth"]
        assert all(thread.startswith("printer-P1") for _, thread in printer.sends)
        assert lane.inline_sends == 0
        assert lane.hardware_id == "SN-P1"

    try:
        run(scenario)
    finally:
        lane.close()
    assert printer.closed


HOST_STATUS_READY = b"".join(
    b"\x02" + line + b"\x03\r\n"
    for line in (b"030,0,0,1218,000,0,0,0,000,0,0,0", b"001,0,0,0,0,2,4,0,00000000,1,000", b"1234,0")
)


class RawZebra:
    """A raw-TCP printer peer: records bytes, answers ~HS and the serial-number query.

    `answering` cleared holds ~HS replies back (a status query in flight); `reading` cleared makes
    it stop reading its socket, as a jammed or vanished printer does, so the sender's buffers fill.
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.02)
        self.port = int(self.server.getsockname()[1])
        self.received = bytearray()
        self.answering = threading.Event()
        self.answering.set()
        self.reading = threading.Event()
        self.reading.set()
        self._owed = 0  # ~HS requests not answered yet
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        client: socket.socket | None = None
        while not self._stop.is_set():
            if client is None:
                with contextlib.suppress(TimeoutError, OSError):
                    client, _ = self.server.accept()
                continue
            if self.answering.is_set() and self._owed:
                client.sendall(HOST_STATUS_READY * self._owed)
                self._owed = 0
            if not self.reading.is_set():
                self.reading.wait(0.02)
                continue
            readable, _, _ = select.select([client], [], [], 0.02)
            if not readable:
                continue
            data = client.recv(1 << 20)
            if not data:
                client.close()
                client = None
                continue
            self.received += data
            self._owed += data.count(b"~HS")
            if b"getvar" in data:
                client.sendall(b'"XXZJ0001"')
        if client is not None:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self.reading.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def zebra() -> Iterator[RawZebra]:
    peer = RawZebra()
    yield peer
    peer.stop()


def _zpl_lane(port: int, **timeouts: float) -> PrinterLane:
    config = PrinterConfig.from_dict({"id": f"Z{port}", "language": "zpl", "host": "127.0.0.1", "port": port})
    return PrinterLane(config, ZplPrinter(config, **timeouts))


async def _until(condition: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_a_label_goes_out_on_the_loop_while_a_status_query_waits_for_its_reply(zebra: RawZebra) -> None:
    lane = _zpl_lane(zebra.port, status_timeout_s=30.0)

    async def scenario() -> None:
        await lane.send(LABEL)  # no connection yet: the lane thread connects and sends
        assert lane.inline_sends == 0
        zebra.answering.clear()
        checking = asyncio.create_task(lane.check())
        await _until(lambda: b"~HS" in zebra.received, "the status request")

        await lane.send(LABEL)

        assert not checking.done(), "the label went out while the status query waited for its reply"
        assert lane.inline_sends == 1
        await _until(lambda: zebra.received.endswith(b"~HS" + LABEL), "the label after the request")
        zebra.answering.set()
        assert await checking == []
        assert lane.state == "ready"
        assert lane.checks == 1

    try:
        run(scenario)
    finally:
        lane.close()


def test_a_printer_that_stops_taking_bytes_holds_up_only_its_own_lane(zebra: RawZebra) -> None:
    healthy = RawZebra()
    stuck, fine = _zpl_lane(zebra.port, write_timeout_s=60.0), _zpl_lane(healthy.port)
    # Bigger than every socket buffer between the two ends: the send cannot finish at once.
    big = b"^XA^FD" + b"x" * (48 << 20) + b"^FS^XZ"

    async def scenario() -> None:
        await stuck.send(LABEL)
        await fine.send(LABEL)
        zebra.reading.clear()
        stalled = asyncio.create_task(stuck.send(big))
        await asyncio.sleep(0)

        await fine.send(LABEL)  # another station's label, on the same loop
        ticks = [await asyncio.sleep(0, result=n) for n in range(100)]  # the loop keeps turning

        assert ticks[-1] == 99
        assert not stalled.done(), "the stuck printer's label is still waiting"
        await _until(lambda: healthy.received.count(LABEL) == 2, "the other printer's label")
        assert not stalled.done()
        zebra.reading.set()
        await stalled
        await _until(lambda: len(zebra.received) == len(LABEL) + len(big), "every byte")

    try:
        run(scenario)
    finally:
        stuck.close()
        fine.close()
        healthy.stop()


def test_a_send_the_printer_never_takes_fails_with_what_to_do(zebra: RawZebra) -> None:
    lane = _zpl_lane(zebra.port, write_timeout_s=0.3)

    async def scenario() -> None:
        await lane.send(LABEL)
        zebra.reading.clear()
        with pytest.raises(PrinterError) as stuck:
            await lane.send(b"^XA" + b"x" * (48 << 20) + b"^XZ")
        assert stuck.value.code == "printer_send_timeout"
        assert "did not take the data" in stuck.value.message
        assert "then reprint" in stuck.value.message
        assert lane.state == "fault"

    try:
        run(scenario)
    finally:
        lane.close()


def test_a_refused_connection_marks_the_lane_offline() -> None:
    lane, printer = _lane()

    async def scenario() -> None:
        printer.fail = PrinterUnreachable("printer P1 refused the connection", code="printer_unreachable")
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

    def take_parcel_weight(self, order_ref: str, *, parcel: int = 1) -> Any:
        return None

    def wait_parcel_weight(self, order_ref: str, timeout_s: float, *, parcel: int = 1, where: str) -> Any:
        raise ScaleError(f"the scale {where} is not answering: switch it on", code="scale_not_answering")

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
            run(lambda: station.weigh(0.1, "F-1"))  # type: ignore[arg-type, return-value]
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
            await station.weigh(0.1, "F-1")

        with pytest.raises(ScaleError) as silent:
            run(weigh)
        assert silent.value.code == "scale_not_answering"
        assert "the scale at S1" in silent.value.message
    finally:
        floor.close()


def test_a_weight_claimed_after_its_pack_was_cancelled_goes_back_to_the_scale() -> None:
    class LateScale(IdleScale):
        """Its parcel settles only when the test says so; records what is given back."""

        def __init__(self, config: ScaleConfig) -> None:
            super().__init__(config)
            self.settle = threading.Event()
            self.given_back: list[tuple[str, int]] = []

        def wait_parcel_weight(self, order_ref: str, timeout_s: float, *, parcel: int = 1, where: str) -> Any:
            self.settle.wait(10)
            return WeightReading(900, True, time.monotonic())

        def give_back(self, order_ref: str, parcel: int = 1) -> None:
            self.given_back.append((order_ref, parcel))

    floor = StationFloor(printer_factory=RecordingPrinter, scale_factory=LateScale)  # type: ignore[arg-type]
    try:
        floor.configure({"S1": _station("S1")})
        station = floor.get("S1")
        assert station is not None
        scale = station.scale
        assert isinstance(scale, LateScale)

        async def scenario() -> None:
            weighing = asyncio.create_task(station.weigh(5.0, "C-1", 2))
            await asyncio.sleep(0)
            weighing.cancel()  # the packer's request went away
            with contextlib.suppress(asyncio.CancelledError):
                await weighing
            assert scale.given_back == []
            scale.settle.set()  # the thread still claims the parcel ...
            await _until(lambda: scale.given_back == [("C-1", 2)], "the late claim to be given back")

        run(scenario)
    finally:
        floor.close()
