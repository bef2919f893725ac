"""The packing floor: each station's printers and scale, opened once and kept.

Every printer gets a lane: one persistent driver object and one worker thread, so the pack path
hands it bytes without opening a connection and labels leave in the order their jobs were
recorded. Connecting, identifying, status queries and any send to a printer whose connection is
not known to be good run in the lane's thread, so a dead printer never blocks the event loop; a
scale's reader thread keeps the latest stable weight in memory.

The one exception is deliberate: a label for a printer whose connection just worked, with
nothing else in its lane, is written on the loop itself. That write is a `sendall` of a couple
of kilobytes into an open socket (microseconds), while the hop to a thread and back costs a
quarter of a millisecond on a busy two-core PC, half the pack path's budget. The price is
bounded by the driver's timeouts: a printer that vanished between two labels can hold the loop
once for its connect or write timeout, after which its lane is no longer "good" and every
send goes through the thread until one succeeds there.

The floor is rebuilt from the synced station entities whenever they change; a printer or scale
whose configuration did not change keeps its connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dockside.errors import DocksideError, PrinterError, ScaleError
from edge_agent.devices import (
    PRINTER_FAULTS,
    Printer,
    PrinterConfig,
    ScaleConfig,
    ScaleReader,
    WeightReading,
    open_printer,
)

__all__ = ["PrinterLane", "Station", "StationFloor"]

log = logging.getLogger(__name__)

PrinterFactory = Callable[[PrinterConfig], Printer]
# How long after a successful send a connection still counts as good for an inline write:
# printers drop idle connections, and reconnecting belongs in the lane thread.
INLINE_WINDOW_S = 20.0
ScaleFactory = Callable[[ScaleConfig], ScaleReader]


class PrinterLane:
    """One printer: its driver, its worker thread, its queue order and what it last said."""

    def __init__(self, config: PrinterConfig, printer: Printer) -> None:
        self.config = config
        self.printer = printer
        self.hardware_id = config.id
        self.state = "unknown"
        self.message = f"printer {config.id} has not been checked yet"
        self.checked_at: float | None = None
        self.faults: frozenset[str] = frozenset()
        # Jobs recorded `held` for this printer and not sent yet; the packer keeps the count so
        # the pack path knows without a query whether a new label must queue behind them.
        self.held = 0
        # Jobs sent since the printer last answered a status request on the same connection.
        # An answer proves it took them (it reads its connection in order); a connection the
        # printer closed first puts them in doubt (see `check`).
        self.unconfirmed: deque[str] = deque(maxlen=10_000)
        self._drops_seen = 0
        # Held by a pack from recording its job to committing the result, so labels on one
        # printer go out in the order their jobs were written.
        self.lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"printer-{config.id}")
        self._closed = False
        self._in_flight: set[Future[Any]] = set()  # lane-thread work not finished yet
        self._last_good_send: float | None = None  # time.monotonic() of the last send that worked
        self.inline_sends = 0

    def _submit(self, call: Callable[[], Any]) -> Future[Any]:
        future = self._thread.submit(call)
        self._in_flight.add(future)
        future.add_done_callback(self._in_flight.discard)
        return future

    async def _in_lane(self, call: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self._submit(call))

    def connect_in_background(self) -> None:
        """Open the connection and learn the hardware id ahead of the first label."""
        self._submit(self._connect)

    @property
    def name(self) -> str:
        """How a packer knows the printer: its model and id ("ZD421 S1-label")."""
        model = self.config.model
        return f"{model} {self.config.id}" if model and model not in self.config.id else self.config.id

    @property
    def faulted(self) -> bool:
        """The last check or send said this printer cannot print now."""
        return self.state in ("fault", "offline")

    def trouble(self, station: str) -> str:
        """What stops this printer, told to a packer at `station`.

        For example "ZD421 S1-label at S1 is out of labels: load labels".
        """
        faults = self.faults or frozenset({"offline" if self.state == "offline" else "no_answer"})
        wording = [
            PRINTER_FAULTS[code].split(", the waiting")[0] for code in PRINTER_FAULTS if code in faults
        ]
        wording += [f"reports {code}" for code in sorted(faults - PRINTER_FAULTS.keys())]
        return f"{self.name} at {station} {'; '.join(wording)}"

    def held_message(self, station: str) -> str:
        """What a packer at `station` reads when a label waits for this printer."""
        return f"{self.trouble(station)}, then the label prints by itself"

    def _connection_is_good(self) -> bool:
        last = self._last_good_send
        return (
            not self._in_flight
            and self.state == "ready"
            and last is not None
            and time.monotonic() - last < INLINE_WINDOW_S
        )

    def _connect(self) -> None:
        try:
            self.printer.open()
            self.hardware_id = self.printer.identify() or self.config.id
            self._mark("ready", f"printer {self.config.id} is connected")
        except DocksideError as exc:
            self._mark("offline", exc.message, {"offline"})
        except Exception as exc:  # a driver bug must not kill the lane
            log.exception("opening printer %s failed", self.config.id)
            self._mark("offline", f"printer {self.config.id} could not be opened: {exc!r}", {"offline"})

    async def send(self, data: bytes) -> None:
        """Hand the label to the printer; PrinterError if it could not take every byte."""
        try:
            if self._connection_is_good():
                self.inline_sends += 1
                self.printer.send(data)  # on the loop: see the module docstring
            else:
                await self._in_lane(lambda: self.printer.send(data))
        except PrinterError as exc:
            self._last_good_send = None
            if exc.code == "printer_unreachable":
                self._mark("offline", exc.message, {"offline"})
            else:
                self._mark("fault", exc.message, {"no_answer"})
            raise
        self._last_good_send = time.monotonic()
        if self.state != "ready":
            self._mark("ready", f"printer {self.config.id} took the last label")

    async def check(self) -> list[str]:
        """Ask the printer how it is (in its lane, so never in the middle of a label).

        Returns the jobs whose labels may be lost: sent since its last answer, after which the
        printer closed the connection (a drop mid-label, a restart, a power cut).
        """
        pending = list(self.unconfirmed)
        try:
            status = await self._in_lane(self.printer.status)
        except DocksideError as exc:
            self._mark("offline", exc.message, {"offline"})
            return self._settle(pending, answered=False)
        lost = self._settle(pending, answered=not {"offline", "no_answer"} & status.faults)
        if status.ready:
            self._mark("ready", status.message)
            # The printer just answered on this connection: the next label may go inline.
            self._last_good_send = time.monotonic()
        elif "offline" in status.faults:
            self._mark("offline", status.message, status.faults)
        else:
            self._mark("fault", status.message, status.faults)
        return lost

    def _settle(self, pending: list[str], *, answered: bool) -> list[str]:
        drops = int(getattr(self.printer, "connection_drops", 0))
        dropped, self._drops_seen = drops != self._drops_seen, drops
        if not (dropped or answered) or not pending:
            return []
        done = set(pending)
        self.unconfirmed = deque((job for job in self.unconfirmed if job not in done), maxlen=10_000)
        return pending if dropped else []

    def _mark(self, state: str, message: str, faults: frozenset[str] | set[str] = frozenset()) -> None:
        self.state, self.message, self.checked_at = state, message, time.time()
        self.faults = frozenset(faults)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.config.id,
            "hardware_id": self.hardware_id,
            "role": self.config.role,
            "language": self.config.language,
            "model": self.config.model,
            "address": self.config.address,
            "state": self.state,
            "message": self.message,
            "faults": sorted(self.faults),
            "held_jobs": self.held,
        }

    def close(self) -> None:
        """Finish queued work, drop the connection and end the thread (blocking)."""
        if self._closed:
            return
        self._closed = True
        self._thread.submit(self.printer.close)
        self._thread.shutdown(wait=True)


@dataclass
class Station:
    """A packing station as configured, with its opened devices."""

    code: str
    name: str
    printers: list[PrinterLane]
    scale: ScaleReader | None
    problems: list[str] = field(default_factory=list)

    def fallback_for(self, role: str) -> PrinterLane | None:
        """The printer standing in for the station's `role` printer (role `fallback` or `<role>-fallback`)."""
        for lane in self.printers:
            if lane.config.role in (f"{role}-fallback", "fallback"):
                return lane
        return None

    def printer_for(self, role: str) -> PrinterLane:
        """The station's first printer with `role`; PrinterError saying what to configure."""
        for lane in self.printers:
            if lane.config.role == role:
                return lane
        detail = f" ({'; '.join(self.problems)})" if self.problems else ""
        raise PrinterError(
            f"station {self.code} has no {role} printer{detail}: add one to the station in the cloud console",
            code="printer_not_configured",
        )

    async def weigh(self, wait_s: float) -> WeightReading:
        """The parcel's stable weight: the reader's fresh one at once, else wait up to `wait_s`."""
        scale = self.scale
        if scale is None:
            detail = f" ({'; '.join(self.problems)})" if self.problems else ""
            raise ScaleError(
                f"station {self.code} has no usable scale{detail}: set its scale in the cloud console",
                code="scale_not_configured",
            )
        reading = scale.stable_weight()
        if reading is not None:
            return reading
        return await asyncio.to_thread(scale.wait_stable, wait_s)

    def describe(self) -> dict[str, Any]:
        scale: dict[str, Any] | None = None
        if self.scale is not None:
            latest = self.scale.latest()
            scale = {
                "protocol": self.scale.config.protocol,
                "port": self.scale.config.port,
                "state": self.scale.state,
                "message": self.scale.message,
                "weight_g": latest.grams if latest else None,
                "stable": latest.stable if latest else None,
            }
        return {
            "code": self.code,
            "name": self.name,
            "printers": [lane.describe() for lane in self.printers],
            "scale": scale,
            "problems": list(self.problems),
        }


class StationFloor:
    """Every station of the warehouse, reconfigured as the synced station entities change."""

    def __init__(
        self,
        *,
        printer_factory: PrinterFactory = open_printer,
        scale_factory: ScaleFactory = ScaleReader,
    ) -> None:
        self._printer_factory = printer_factory
        self._scale_factory = scale_factory
        self.stations: dict[str, Station] = {}
        self._lanes: dict[str, PrinterLane] = {}
        self._scales: dict[str, ScaleReader] = {}  # by serial port
        self._retiring: list[threading.Thread] = []

    def get(self, code: str) -> Station | None:
        return self.stations.get(code)

    def lane(self, printer_id: str) -> PrinterLane | None:
        return self._lanes.get(printer_id)

    def lanes(self) -> list[PrinterLane]:
        return list(self._lanes.values())

    def scales(self) -> list[tuple[str, ScaleReader]]:
        return [(code, s.scale) for code, s in self.stations.items() if s.scale is not None]

    def configure(self, bodies: Mapping[str, Mapping[str, Any]]) -> None:
        """Match the floor to the station entities; keep unchanged devices open."""
        lanes: dict[str, PrinterLane] = {}
        scales: dict[str, ScaleReader] = {}
        stations: dict[str, Station] = {}
        for code, body in sorted(bodies.items()):
            problems: list[str] = []
            station_lanes: list[PrinterLane] = []
            entries = body.get("printers") or []
            for entry in entries if isinstance(entries, list) else []:
                try:
                    config = PrinterConfig.from_dict(entry)
                    lane = lanes.get(config.id) or self._keep_or_open_lane(config)
                except DocksideError as exc:
                    problems.append(exc.message)
                    continue
                if lane.config != config:
                    problems.append(f"printer {config.id} is configured differently at another station")
                    continue
                lanes[config.id] = lane
                station_lanes.append(lane)
            scale = None
            if body.get("scale"):
                try:
                    scale_config = ScaleConfig.from_dict(body["scale"])
                    scale = scales.get(scale_config.port) or self._keep_or_start_scale(scale_config)
                    scales[scale_config.port] = scale
                except DocksideError as exc:
                    problems.append(exc.message)
            name = body.get("name")
            stations[code] = Station(
                code, name if isinstance(name, str) else code, station_lanes, scale, problems
            )
            for problem in problems:
                log.warning("station %s: %s", code, problem)
        retired_lanes = [lane for pid, lane in self._lanes.items() if lanes.get(pid) is not lane]
        retired_scales = [s for port, s in self._scales.items() if scales.get(port) is not s]
        self._lanes, self._scales, self.stations = lanes, scales, stations
        for lane in retired_lanes:
            self._in_background(lane.close, f"closing printer {lane.config.id}")
        for reader in retired_scales:
            self._in_background(reader.stop, f"stopping the scale on {reader.config.port}")

    def _in_background(self, work: Callable[[], None], what: str) -> None:
        """Run blocking teardown off the event loop; `close()` waits for it."""

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("%s failed", what)

        thread = threading.Thread(target=run, name=what, daemon=True)
        self._retiring = [t for t in self._retiring if t.is_alive()] + [thread]
        thread.start()

    def _keep_or_open_lane(self, config: PrinterConfig) -> PrinterLane:
        current = self._lanes.get(config.id)
        if current is not None and current.config == config:
            return current
        lane = PrinterLane(config, self._printer_factory(config))
        lane.connect_in_background()
        return lane

    def _keep_or_start_scale(self, config: ScaleConfig) -> ScaleReader:
        current = self._scales.get(config.port)
        if current is not None and current.config == config:
            return current
        reader = self._scale_factory(config)
        reader.start()
        return reader

    def close(self) -> None:
        """Close every printer and stop every scale reader (blocking; call off the loop)."""
        lanes, scales = list(self._lanes.values()), list(self._scales.values())
        self._lanes, self._scales, self.stations = {}, {}, {}
        for lane in lanes:
            lane.close()
        for reader in scales:
            reader.stop()
        for thread in self._retiring:
            thread.join(timeout=10)
        self._retiring = []
