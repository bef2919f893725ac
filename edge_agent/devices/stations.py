"""The packing floor: each station's printers and scale, opened once and kept.

Every printer gets a lane: one persistent driver object and one worker thread, so the pack path
hands it bytes without opening a connection and labels leave in the order their jobs were
recorded. Nothing that can wait ever runs on the event loop: connecting, identifying, status
queries and any send that cannot complete at once run in the lane's thread, and the loop
awaits their future, so a printer that vanishes holds up only its own lane (its packs come
back `held` or `failed` with what to do), never the station page or the other stations.

A label for a printer whose driver can take it without waiting (`InlineSender`: ZPL over an
open TCP connection with room in its buffer) is handed over on the loop itself: a non-blocking
`send` of a couple of kilobytes (microseconds), where the hop to a thread and back costs a
quarter of a millisecond on a busy two-core PC, half the pack path's budget. Whatever would
wait (no connection yet, a closed one, a full buffer, the rest of a label the socket took in
part) goes to the lane thread. A status poll never stands in a label's way: its request and
the label are written one after the other on the same connection, and the reply is read in
the lane thread while the label goes out.

The floor is rebuilt from the synced station entities whenever they change; a printer or scale
whose configuration did not change keeps its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
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
from edge_agent.devices.printer import InlineSender

__all__ = ["PrinterLane", "Station", "StationFloor"]

log = logging.getLogger(__name__)

PrinterFactory = Callable[[PrinterConfig], Printer]
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
        self._inline = printer if isinstance(printer, InlineSender) else None
        # Sends still running in the lane thread (one whose pack was cancelled may outlive it):
        # a label handed over on the loop must not overtake them.
        self._lane_sends = 0
        self.inline_sends = 0  # labels handed over on the loop (for tests and the bench)
        self.checks = 0  # status checks answered or failed (for the status page and the bench)

    def _submit(self, call: Callable[[], Any]) -> Future[Any]:
        return self._thread.submit(call)

    async def _in_lane(self, call: Callable[[], Any]) -> Any:
        return await asyncio.wrap_future(self._submit(call))

    async def _send_in_lane(self, call: Callable[[], None]) -> None:
        self._lane_sends += 1
        future = self._submit(call)

        def done(_future: Future[Any]) -> None:
            self._lane_sends -= 1

        # Counted down on the loop, where it is read (the future may finish after a cancelled pack).
        loop = asyncio.get_running_loop()

        def done_in_lane(finished: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop already closed (agent stopping)
                loop.call_soon_threadsafe(done, finished)

        future.add_done_callback(done_in_lane)
        await asyncio.wrap_future(future)

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
        """Hand the label to the printer; PrinterError if it could not take every byte.

        On the loop when the driver can take it at once, else in the lane thread (see the
        module docstring); the loop never waits on the printer either way.
        """
        inline = self._inline
        try:
            taken = inline.send_nowait(data) if inline is not None and not self._lane_sends else None
            if taken is None:
                await self._send_in_lane(lambda: self.printer.send(data))
            elif taken < len(data):
                assert inline is not None
                await self._send_in_lane(inline.finish_send)
            else:
                self.inline_sends += 1
        except PrinterError as exc:
            if exc.code == "printer_unreachable":
                self._mark("offline", exc.message, {"offline"})
            else:
                self._mark("fault", exc.message, {"no_answer"})
            raise
        if self.state != "ready":
            self._mark("ready", f"printer {self.config.id} took the last label")

    async def check(self) -> list[str]:
        """Ask the printer how it is (in its lane thread; labels go out meanwhile).

        Returns the jobs whose labels may be lost: sent since its last answer, after which the
        printer closed the connection (a drop mid-label, a restart, a power cut).
        """
        pending = list(self.unconfirmed)
        try:
            status = await self._in_lane(self.printer.status)
        except DocksideError as exc:
            self._mark("offline", exc.message, {"offline"})
            return self._settle(pending, answered=False)
        finally:
            self.checks += 1
        lost = self._settle(pending, answered=not {"offline", "no_answer"} & status.faults)
        if status.ready:
            self._mark("ready", status.message)
        elif "offline" in status.faults:
            self._mark("offline", status.message, status.faults)
        else:
            self._mark("fault", status.message, status.faults)
        return lost

    def _settle(self, pending: list[str], *, answered: bool) -> list[str]:
        drops = int(getattr(self.printer, "connection_drops", 0))
        dropped, self._drops_seen = drops != self._drops_seen, drops
        if dropped:
            # Every label sent before the drop was seen may be lost, one handed over while this
            # check waited for its answer included: a person looks (it is never resent).
            lost = list(self.unconfirmed)
            self.unconfirmed.clear()
            return lost
        if answered and pending:
            done = set(pending)
            self.unconfirmed = deque((job for job in self.unconfirmed if job not in done), maxlen=10_000)
        return []

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
            "status_checks": self.checks,
            "inline_sends": self.inline_sends,
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

    def _scale(self) -> ScaleReader:
        scale = self.scale
        if scale is None:
            detail = f" ({'; '.join(self.problems)})" if self.problems else ""
            raise ScaleError(
                f"station {self.code} has no usable scale{detail}: set its scale in the cloud console",
                code="scale_not_configured",
            )
        return scale

    async def weigh(self, wait_s: float, order_ref: str) -> WeightReading:
        """The parcel's stable weight, claimed for `order_ref`: at once, else waiting up to `wait_s`.

        A weight serves one parcel (see ScaleReader): once a pack took it, the next pack waits
        for a new parcel on the scale, and says so if none comes. `give_back` undoes the claim
        of a pack that recorded no job.
        """
        scale = self._scale()
        reading = scale.take_parcel_weight(order_ref)
        if reading is not None:
            return reading
        waiting = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(scale.wait_parcel_weight, order_ref, wait_s, where=f"at {self.code}")
        )
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The pack was cancelled (the client went away) while the thread still waits: a
            # weight it claims later goes back to the scale.
            def give_back_late(done: asyncio.Future[WeightReading]) -> None:
                if not done.cancelled() and done.exception() is None:
                    scale.give_back(order_ref)

            waiting.add_done_callback(give_back_late)
            raise

    def give_back(self, order_ref: str) -> None:
        """The pack of `order_ref` recorded no job: its weight may serve the next pack."""
        if self.scale is not None:
            self.scale.give_back(order_ref)

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
                # A parcel's weight waits to be used: a scan now packs at once.
                "parcel_ready": self.scale.parcel_weight() is not None,
                "last_used": dataclasses.asdict(used) if (used := self.scale.used()) else None,
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
