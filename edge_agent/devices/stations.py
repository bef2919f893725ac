"""The packing floor: each station's printers and scale, opened once and kept.

Every printer gets a lane (`printer_lane.PrinterLane`: one kept-open driver, one worker
thread) and every scale a reader (`scale_reader.ScaleReader`: one background thread); a
station is its lanes and its reader.

The floor is rebuilt from the synced station entities whenever they change; a printer or scale
whose configuration did not change keeps its connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockside.errors import DocksideError, PrinterUnusable, ScaleError

from .config import PrinterConfig, ScaleConfig
from .printer import Printer
from .printer_drivers import open_printer
from .printer_lane import PrinterLane, PrinterLaneStatus
from .scale import WeightReading
from .scale_reader import ScaleReader, UsedWeight

__all__ = [
    "PrinterFactory",
    "ScaleFactory",
    "ScaleStatus",
    "Station",
    "StationFloor",
    "StationStatus",
    "station_mode",
]

log = logging.getLogger(__name__)

PrinterFactory = Callable[[PrinterConfig], Printer]
ScaleFactory = Callable[[ScaleConfig], ScaleReader]


@dataclass(frozen=True, slots=True)
class ScaleStatus:
    """A station's scale as the station page shows it."""

    protocol: str
    port: str
    state: str
    message: str
    weight_g: int | None
    stable: bool | None
    parcel_ready: bool  # a parcel's weight waits to be used: a scan now packs at once
    last_used: UsedWeight | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class StationStatus:
    """A station, its printers and its scale as the station page and `GET /api/v1/status` show them."""

    code: str
    name: str
    printers: list[PrinterLaneStatus]
    scale: ScaleStatus | None
    problems: list[str]
    mode: str = "pack"  # what the station page starts in: "pack", or "dock" (handover scans)

    def to_json(self) -> dict[str, Any]:
        """The JSON the local API sends (keys in field order, nested statuses included)."""
        return dataclasses.asdict(self)


@dataclass
class Station:
    """A packing station as configured, with its opened devices."""

    code: str
    name: str
    printers: list[PrinterLane]
    scale: ScaleReader | None
    problems: list[str] = field(default_factory=list)
    mode: str = "pack"

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
        raise PrinterUnusable(
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

    async def weigh(self, wait_s: float, order_ref: str, parcel: int = 1) -> WeightReading:
        """The parcel's stable weight, claimed for parcel `parcel` of `order_ref`: at once, else
        waiting up to `wait_s`.

        A weight serves one parcel (see ScaleReader): once a pack took it, the next pack waits
        for a new parcel on the scale, and says so if none comes. `give_back` undoes the claim
        of a pack that recorded no job.
        """
        scale = self._scale()
        reading = scale.take_parcel_weight(order_ref, parcel=parcel)
        if reading is not None:
            return reading
        waiting = asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(
                scale.wait_parcel_weight, order_ref, wait_s, parcel=parcel, where=f"at {self.code}"
            ),
        )
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The pack was cancelled (the client went away) while the thread still waits: a
            # weight it claims later goes back to the scale.
            def give_back_late(done: asyncio.Future[WeightReading]) -> None:
                if not done.cancelled() and done.exception() is None:
                    scale.give_back(order_ref, parcel)

            waiting.add_done_callback(give_back_late)
            raise

    def give_back(self, order_ref: str, parcel: int = 1) -> None:
        """The pack of parcel `parcel` of `order_ref` recorded no job: its weight may serve the next pack."""
        if self.scale is not None:
            self.scale.give_back(order_ref, parcel)

    def describe(self) -> StationStatus:
        """What the station page and the status API show about this station now."""
        scale: ScaleStatus | None = None
        if self.scale is not None:
            latest = self.scale.latest()
            scale = ScaleStatus(
                protocol=self.scale.config.protocol,
                port=self.scale.config.port,
                state=self.scale.state,
                message=self.scale.message,
                weight_g=latest.grams if latest else None,
                stable=latest.stable if latest else None,
                parcel_ready=self.scale.parcel_weight() is not None,
                last_used=self.scale.used(),
            )
        return StationStatus(
            code=self.code,
            name=self.name,
            printers=[lane.describe() for lane in self.printers],
            scale=scale,
            problems=list(self.problems),
            mode=self.mode,
        )


STATION_MODES = ("pack", "dock")


def station_mode(value: Any) -> str | None:
    """The station's synced `mode`: "pack" when absent, None when it is not "pack" or "dock"."""
    if value is None:
        return "pack"
    if isinstance(value, str) and value.strip().lower() in STATION_MODES:
        return value.strip().lower()
    return None


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
            mode = station_mode(body.get("mode"))
            if mode is None:
                problems.append(
                    f"station mode {str(body.get('mode'))[:40]!r} is neither 'pack' nor 'dock': the "
                    "station page starts in pack mode; correct the station in the cloud console"
                )
            stations[code] = Station(
                code, name if isinstance(name, str) else code, station_lanes, scale, problems, mode or "pack"
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
