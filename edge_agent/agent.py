"""The running agent: the store, the cache, the packing floor and the sync tasks, on one event loop.

Everything that touches the SQLite connection (the pack path, the watch loop, the outbox sender,
the status API) runs on this loop and never awaits inside a transaction, so one connection
serves them all without locks. Blocking device work runs in device threads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from dockside.scanning import ScanReader
from dockside.v1 import sync_pb2 as pb
from edge_agent import __version__
from edge_agent.devices.lan_presence import LanPresence
from edge_agent.devices.stations import PrinterFactory, ScaleFactory, StationFloor
from edge_agent.metrics import AgentMetrics
from edge_agent.packing.labelling import Labeller
from edge_agent.packing.pack import Packer
from edge_agent.packing.packers import StationSignIns
from edge_agent.printing.confirmation import confirm_timeout_from_env
from edge_agent.printing.queue import PrintQueue
from edge_agent.scheduler import AgentScheduler, ScheduleSettings
from edge_agent.shutdown import bounded_step, in_daemon_thread
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox
from edge_agent.store.privacy import purge_shipped_personal_data
from edge_agent.sync import Backoff, CloudLink, OutboxSender, StatusReporter, SyncTransport, Watcher
from edge_agent.sync.identity import Identity

__all__ = ["Agent", "AgentSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """The agent's tunables; the defaults suit a warehouse."""

    scale_wait_s: float = 3.0  # how long a pack waits for a scale with no fresh stable weight
    report_interval_s: float = 30.0
    printer_check_interval_s: float = 1.0  # status polls; the pack path reads their result
    scale_watchdog_interval_s: float = 2.0
    outbox_flush_interval_s: float = 5.0
    outbox_batch_size: int = 2_000  # outbox_sender.DEFAULT_BATCH_SIZE; cut further by bytes
    outbox_linger_s: float = 0.01  # after a pack, how long the sender waits for more events
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    advertise: bool = (
        False  # announce `_dockside._tcp` and browse printers (`dockside-agent run` turns it on)
    )
    lan_interfaces: tuple[str, ...] | None = None  # None: every interface
    personal_data_retention_days: int = 30  # ship-to of shipped orders is blanked after this
    carrier_label_limit_s: float = 5.0  # time to draw one PDF/PNG carrier label (0.5..60)
    # How long a printer may take to confirm a label ($DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S wins).
    print_confirm_timeout_s: float = 30.0
    scan_reader: ScanReader = field(default_factory=ScanReader)  # a scan to its order ([scanner])


class Agent:
    """One enrolled agent, ready to `start()` on the running event loop."""

    def __init__(
        self,
        store: Store,
        identity: Identity,
        transport: SyncTransport,
        settings: AgentSettings | None = None,
        *,
        printer_factory: PrinterFactory | None = None,
        scale_factory: ScaleFactory | None = None,
    ) -> None:
        self.settings = settings or AgentSettings()
        self.store = store
        self.identity = identity
        self.transport = transport
        self.metrics = AgentMetrics()
        self.link = CloudLink()
        self.cache = Cache(store)
        self.outbox = Outbox(store)
        floor_options: dict[str, Any] = {}
        if printer_factory is not None:
            floor_options["printer_factory"] = printer_factory
        if scale_factory is not None:
            floor_options["scale_factory"] = scale_factory
        self.floor = StationFloor(**floor_options)
        self.cache.on_stations_changed(self.floor.configure)
        self.queue = PrintQueue(
            store,
            self.cache,
            self.floor,
            self.outbox,
            self.metrics,
            confirm_timeout_s=confirm_timeout_from_env(default=self.settings.print_confirm_timeout_s),
        )
        # Who packs at each station (kept across restarts): every job made there carries them.
        self.sign_ins = StationSignIns(store, self.cache)
        self.labeller = Labeller(
            store,
            self.cache,
            self.outbox,
            warehouse=identity.warehouse,
            carrier_label_limit_s=self.settings.carrier_label_limit_s,
            sign_ins=self.sign_ins,
        )
        # An order with a PDF or PNG carrier label starts the label worker ahead of its pack.
        self.cache.on_image_label(self._warm_label_worker)
        self._warming: asyncio.Task[None] | None = None
        self.packer = Packer(
            self.cache,
            self.floor,
            self.queue,
            self.labeller,
            self.outbox,
            self.metrics,
            scale_wait_s=self.settings.scale_wait_s,
        )
        s = self.settings
        self.watcher = Watcher(
            store,
            self.cache,
            transport,
            self.link,
            self.metrics,
            backoff=Backoff(base_s=s.reconnect_base_s, cap_s=s.reconnect_cap_s),
        )
        self.sender = OutboxSender(
            self.outbox,
            transport,
            self.link,
            self.metrics,
            batch_size=s.outbox_batch_size,
            linger_s=s.outbox_linger_s,
            backoff=Backoff(base_s=s.reconnect_base_s, cap_s=s.reconnect_cap_s),
        )
        # The scheduler asks for a report every interval; the reporter's own timer is a backstop.
        self.reporter = StatusReporter(
            transport, self.link, self.cloud_report, interval_s=s.report_interval_s * 2
        )
        self.scheduler = AgentScheduler(
            self.floor,
            self.queue,
            flush_outbox=self.sender.wake,
            report_status=self.reporter.report_now,
            purge_personal_data=lambda: purge_shipped_personal_data(
                store, keep_days=s.personal_data_retention_days
            ),
            settings=ScheduleSettings(
                printer_poll_s=s.printer_check_interval_s,
                scale_watchdog_s=s.scale_watchdog_interval_s,
                outbox_flush_s=s.outbox_flush_interval_s,
                report_s=s.report_interval_s,
            ),
        )
        self.watcher.on_stream_up(self.sender.cloud_is_back)
        self.watcher.on_stream_up(self.reporter.report_now)
        self.metrics.bind_gauges(
            outbox_depth=self.outbox.depth,
            dead_letters=self.outbox.dead_letter_count,
            online=lambda: 1.0 if self.link.online else 0.0,
            revision=self.store.revision,
            lag=lambda: self.link.lag(self.store.revision()),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        self.lan: LanPresence | None = None  # set by run_agent while it advertises

    async def start(self) -> None:
        """Recover unfinished jobs, load the cache, open the devices, start syncing."""
        unknown = self.queue.recover_unfinished()
        if unknown:
            log.warning("%d job(s) were being sent when the agent stopped; marked unknown", len(unknown))
        self.cache.load()  # configures the floor through the stations listener
        self.packer.awaiting.release_awaiting_soon()  # labels that awaited a number when the agent stopped
        self._spawn(self.watcher.run(), "watch")
        self._spawn(self.sender.run(), "outbox sender")
        self._spawn(self.reporter.run(), "status reporter")
        self.scheduler.start()
        checkpointer = self.store.checkpoint_off_the_loop()
        if checkpointer is not None:
            self._spawn(checkpointer.run(), "WAL checkpoints")
        self.sender.wake()  # events left from a previous run
        self.started = True

    def _warm_label_worker(self) -> None:
        """Start the carrier labels' worker in the background (once at a time; a running worker
        makes it a no-op), so a packer's first PDF or PNG label does not wait for its start."""
        if self._warming is not None and not self._warming.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the cache loaded outside the loop (a command, a test): no worker
            return
        self._warming = loop.create_task(self._warm(), name="label worker warm-up")

    async def _warm(self) -> None:
        try:
            await self.labeller.warm_up()
        except Exception:  # the first label starts it again and reports what went wrong
            log.exception("the carrier labels' worker did not start ahead of need")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(work, name=name))

    async def stop(self) -> None:
        """Stop syncing, close the devices and the transport (the store stays open).

        Each step is bounded (edge_agent.shutdown): one that hangs is named in the log and left
        behind, so a stop for an update or a service stop always ends."""
        self.scheduler.stop()
        if self._warming is not None:
            await bounded_step("the label worker's warm-up", self._warming)
        await bounded_step("the labels awaiting a number", self.packer.awaiting.stop())
        await bounded_step("the printers' status re-checks", self.queue.stop())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await bounded_step(f"the {task.get_name()} task", task)
        self._tasks = []
        await bounded_step("closing the printers and scales", in_daemon_thread("devices", self.floor.close))
        # The carrier labels' worker process, after the label it draws.
        await bounded_step("the label worker", self.labeller.close())
        await bounded_step("the cloud connection", self.transport.close())
        self.started = False
        log.info("agent stopped: devices closed, sync stopped")

    # -- what the agent tells people and the cloud --------------------------------------------

    def status(self) -> dict[str, Any]:
        """`GET /api/v1/status`: who this agent is, its link, its queues and its stations."""
        revision = self.store.revision()
        return {
            "agent_id": self.identity.agent_id,
            "warehouse": self.identity.warehouse,
            "version": __version__,
            "revision": revision,
            "online": self.link.online,
            "last_contact_ms": self.link.last_contact_ms,
            "last_error": self.link.last_error,
            "watch_lag": self.link.lag(revision),
            "credential_refused": self.link.auth_refused,
            "outbox_depth": self.outbox.depth(),
            "dead_letters": self.outbox.dead_letter_count(),
            "jobs": self.queue.jobs.count_by_status(),
            "templates": self.cache.templates.names(),
            "stations": [station.describe().to_json() for station in self.floor.stations.values()],
        }

    def cloud_report(self) -> pb.ReportStatusRequest:
        """The ReportStatus request: version, revision, outbox depth and every device."""
        devices = []
        for code, station in self.floor.stations.items():
            for lane in station.printers:
                devices.append(
                    pb.DeviceStatus(
                        id=lane.hardware_id,
                        kind="printer",
                        station=code,
                        model=lane.config.model,
                        address=lane.config.address,
                        state=lane.state,
                        message=lane.message,
                    )
                )
            if station.scale is not None:
                state = station.scale.state
                devices.append(
                    pb.DeviceStatus(
                        id=f"{socket.gethostname()}:{station.scale.config.port}",
                        kind="scale",
                        station=code,
                        model=station.scale.config.protocol,
                        address=station.scale.config.port,
                        state="ready" if state == "ok" else ("unknown" if state == "starting" else "fault"),
                        message=station.scale.message,
                    )
                )
        if self.lan is not None:
            configured = {lane.hardware_id for lane in self.floor.lanes()}
            configured |= {lane.config.id for lane in self.floor.lanes()}
            configured |= {lane.config.address for lane in self.floor.lanes()}
            for printer in self.lan.unconfigured(configured):
                devices.append(
                    pb.DeviceStatus(
                        id=printer.id,
                        kind="printer",
                        station="",
                        model=printer.model,
                        address=f"{printer.host}:{printer.port}",
                        state="discovered",
                        message=f"seen on the LAN ({printer.language or 'language unknown'}); "
                        "add it to a station in the cloud console to print on it",
                    )
                )
        return pb.ReportStatusRequest(
            agent_version=__version__,
            revision=self.store.revision(),
            outbox_depth=self.outbox.depth(),
            devices=devices,
            sent_at_ms=now_ms(),
        )
