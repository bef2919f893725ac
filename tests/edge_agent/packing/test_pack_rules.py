"""The pack path's decisions with scripted devices: failures mid-send, missing templates, reprint rules.

Unit tests of the Packer's logic (the real-device paths are in test_pack_api.py): the printer and
the scale here are small scripted stand-ins so each failure can be produced exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import DocksideError, PrinterError, PrinterUnreachable, ScaleError
from edge_agent.agent import Agent
from edge_agent.devices import PrinterConfig, PrinterStatus, ScaleConfig, WeightReading
from edge_agent.packing.waves import WavePrinter
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from edge_agent.sync.identity import save_identity
from tests.edge_agent.agent_harness import FAST, order_body, publish_warehouse
from tests.edge_agent.waiting import until


class ScriptedPrinter:
    """Takes labels, or raises the next scripted error."""

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self.labels: list[bytes] = []
        self.errors: list[PrinterError] = []
        self.down = False  # refuses connections and reports itself offline

    def open(self) -> None:
        pass

    def identify(self) -> str:
        return "SN-1"

    def send(self, data: bytes) -> None:
        if self.down:
            raise PrinterUnreachable("printer P1 refused the connection", code="printer_unreachable")
        if self.errors:
            raise self.errors.pop(0)
        self.labels.append(data)

    def status(self) -> PrinterStatus:
        if self.down:
            return PrinterStatus(ready=False, faults=frozenset({"offline"}), message="P1 is offline")
        return PrinterStatus(ready=True, faults=frozenset(), message="ready")

    def close(self) -> None:
        pass


class ScriptedScale:
    """A new parcel of a stable 1500 g at every scan, or the scripted error."""

    def __init__(self, config: ScaleConfig) -> None:
        self.config = config
        self.state, self.message = "ok", "ok"
        self.error: ScaleError | None = None
        self.remembered = False

    def remember_used(self, used: object) -> None:
        # Every scan finds a new parcel (below), so the weight a restart remembers changes nothing.
        self.remembered = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def take_parcel_weight(self, order_ref: str, *, parcel: int = 1) -> WeightReading | None:
        # Every scan finds a new parcel on it (the real rule, one weight per parcel, is tested
        # against the mock scale).
        return None if self.error else WeightReading(1500, True, time.monotonic())

    def wait_parcel_weight(
        self, order_ref: str, timeout_s: float, *, parcel: int = 1, where: str
    ) -> WeightReading:
        assert self.error is not None
        raise self.error

    def give_back(self, order_ref: str, parcel: int = 1) -> None:
        pass

    def latest(self) -> WeightReading | None:
        return None


class Floor:
    def __init__(self) -> None:
        self.printers: dict[str, ScriptedPrinter] = {}
        self.scales: list[ScriptedScale] = []

    def printer(self, config: PrinterConfig) -> ScriptedPrinter:
        self.printers[config.id] = ScriptedPrinter(config)
        return self.printers[config.id]

    def scale(self, config: ScaleConfig) -> ScriptedScale:
        self.scales.append(ScriptedScale(config))
        return self.scales[-1]


STATION = {
    "code": "S1",
    "printers": [{"id": "P1", "role": "label", "language": "zpl", "host": "127.0.0.1", "port": 9100}],
    "scale": {"protocol": "mt-sics", "port": "/dev/ttyUSB0"},
}


@asynccontextmanager
async def started(data_dir: Path, cloud: MemoryTransport, floor: Floor) -> AsyncIterator[Agent]:
    store = Store.open(data_dir)
    identity = save_identity(store, agent_id="a", credential="c", warehouse="WH1", tenant="t", cloud="m")
    agent = Agent(store, identity, cloud, FAST, printer_factory=floor.printer, scale_factory=floor.scale)  # type: ignore[arg-type]
    await agent.start()
    try:
        await until(lambda: store.revision() == cloud.head)
        yield agent
    finally:
        await agent.stop()
        store.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def _cloud(*, template: bool = True) -> MemoryTransport:
    cloud = MemoryTransport()
    if template:
        publish_warehouse(cloud)
    cloud.publish("station", "S1", STATION)
    for n in range(1, 6):
        cloud.publish("order", f"R-{n}", order_body(f"R-{n}"))
    return cloud


def _outbox(agent: Agent) -> list[tuple[str, dict[str, Any]]]:
    return [
        (row["kind"], json.loads(row["body"])) for row in agent.store.query("SELECT kind, body FROM outbox")
    ]


def test_a_send_that_breaks_midway_leaves_a_failed_job_for_a_person(data_dir: Path) -> None:
    floor = Floor()

    async def scenario() -> None:
        async with started(data_dir, _cloud(), floor) as agent:
            floor.printers["P1"].errors.append(
                PrinterError("printer P1 dropped the connection while receiving", code="printer_send_failed")
            )
            with pytest.raises(PrinterError) as broken:
                await agent.packer.pack("R-1", "S1", "mid-1")
            assert broken.value.code == "printer_send_failed"
            assert "may have printed in part" in broken.value.message
            assert "Reprint" in broken.value.message

            job = agent.queue.jobs.first_for_order("R-1")
            assert job is not None
            assert job.status == "failed"
            assert "printer_send_failed" in job.reason
            (kind, body), *_ = _outbox(agent)
            assert kind == "label_failed"
            assert body["maybe_printed"] is True
            # Never printed again by itself: a rescan shows the failed job ...
            rescan = await agent.packer.pack("R-1", "S1", "mid-2")
            assert rescan.status == "already_packed"
            assert floor.printers["P1"].labels == []
            kinds = [kind for kind, _ in _outbox(agent)]
            assert kinds.count("exception_raised") == 1  # a person is asked to look
            # ... and a person reprints it on purpose, once the immediate re-check found it ready.
            lane = agent.floor.lane("P1")
            assert lane is not None
            await until(lambda: lane.state == "ready", what="the re-check after the broken send")
            again = await agent.packer.reprints.reprint(job.job_id, "no label came out")
            assert again.status == "sent"
            assert len(floor.printers["P1"].labels) == 1

    run(scenario)


def test_a_template_that_has_not_synced_is_a_clear_503(data_dir: Path) -> None:
    floor = Floor()

    async def scenario() -> None:
        async with started(data_dir, _cloud(template=False), floor) as agent:
            with pytest.raises(DocksideError) as missing:
                await agent.packer.pack("R-1", "S1", "tpl-1")
            assert missing.value.code == "template_not_synced"
            assert missing.value.http_status == 503
            assert "shipping-4x6" in missing.value.message
            assert agent.queue.jobs.first_for_order("R-1") is None

    run(scenario)


def test_a_scale_error_passes_through_with_its_code(data_dir: Path) -> None:
    floor = Floor()

    async def scenario() -> None:
        async with started(data_dir, _cloud(), floor) as agent:
            floor.scales[0].error = ScaleError(
                "the scale is overloaded: take the parcel off", code="scale_overload"
            )
            with pytest.raises(ScaleError) as overloaded:
                await agent.packer.pack("R-2", "S1", "heavy")
            assert overloaded.value.code == "scale_overload"
            assert agent.queue.jobs.first_for_order("R-2") is None
            assert _outbox(agent) == []

    run(scenario)


def test_a_station_without_a_label_printer_says_so(data_dir: Path) -> None:
    floor = Floor()
    cloud = _cloud()
    cloud.publish(
        "station",
        "S2",
        {**STATION, "code": "S2", "printers": [{**STATION["printers"][0], "id": "P2", "role": "slip"}]},
    )  # type: ignore[dict-item]

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            with pytest.raises(PrinterError) as none:
                await agent.packer.pack("R-3", "S2", "no-label-printer")
            assert none.value.code == "printer_not_configured"
            assert "station S2 has no label printer" in none.value.message

    run(scenario)


def test_reprint_rules(data_dir: Path) -> None:
    floor = Floor()
    cloud = _cloud()

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            job = await agent.packer.pack("R-4", "S1", "rp")
            first = await agent.packer.reprints.reprint(job.job_id, "torn", request_id="reprint-1")
            same = await agent.packer.reprints.reprint(job.job_id, "torn", request_id="reprint-1")
            assert same == first  # a double-clicked reprint prints once
            assert len(floor.printers["P1"].labels) == 2
            with pytest.raises(DocksideError) as too_long:
                await agent.packer.reprints.reprint(job.job_id, "x" * 501)
            assert too_long.value.code == "reason_too_long"
            with pytest.raises(DocksideError) as reused:
                await agent.packer.reprints.reprint(job.job_id, "torn", request_id="rp")
            assert reused.value.code == "request_id_reused"
            # A printer that refuses the connection: the reprint is held, not lost and not doubled.
            floor.printers["P1"].down = True
            held = await agent.packer.reprints.reprint(job.job_id, "torn again")
            assert held.status == "held"
            assert "is offline" in held.message
            assert "prints by itself" in held.message
            assert len(floor.printers["P1"].labels) == 2
            with pytest.raises(DocksideError) as waiting:
                await agent.packer.reprints.reprint(held.job_id, "impatient")
            assert waiting.value.code == "job_in_flight"
            lane = agent.floor.lane("P1")
            assert lane is not None
            await until(lambda: lane.state == "offline", what="the re-check to find it offline")
            assert await agent.queue.release_held(lane) == 0
            floor.printers["P1"].down = False
            await agent.scheduler.poll_printers()
            # The poll, or the re-check the failed send started, sends it: either way once.
            await until(
                lambda: agent.queue.jobs.get(held.job_id).status == "printed",  # type: ignore[union-attr]
                what="the held reprint to go out",
            )
            assert len(floor.printers["P1"].labels) == 3
            # The outbox sender may have delivered some events meanwhile: count at the cloud.
            await until(lambda: not _outbox(agent), what="the outbox to drain")
            kinds = [event.kind for event in cloud.received.values()]
            assert kinds.count("label_held") == 1
            assert kinds.count("label_reprinted") == 2
            assert kinds.count("label_failed") == 0

    run(scenario)


def test_the_status_report_to_the_cloud_lists_the_devices(data_dir: Path) -> None:
    floor = Floor()
    cloud = _cloud()

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            await until(lambda: cloud.reports, what="the first status report, at start")
            lane = agent.floor.lane("P1")
            assert lane is not None
            await until(lambda: lane.hardware_id == "SN-1", what="the printer to say its serial number")
            assert await agent.reporter.report_once()

    run(scenario)
    report = cloud.reports[-1]
    assert report.revision == cloud.head
    kinds = sorted((device.kind, device.station) for device in report.devices)
    assert kinds == [("printer", "S1"), ("scale", "S1")]
    printer = next(device for device in report.devices if device.kind == "printer")
    assert printer.id == "SN-1"  # the stable hardware id, not the address
    assert printer.address == "127.0.0.1:9100"


def _ruleset(name: str, carrier: str) -> dict[str, Any]:
    return {"name": name, "version": 1, "default": {"carrier": carrier}, "rules": [], "sku_tags": {}}


def test_packing_decides_with_the_ruleset_named_default_never_another(data_dir: Path) -> None:
    floor = Floor()
    cloud = _cloud()
    cloud.publish("ruleset", "trial", _ruleset("trial", "TRIAL"))  # the only one, but not 'default'

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            with pytest.raises(DocksideError) as refused:
                await agent.packer.pack("R-1", "S1", "only-trial")
            assert (refused.value.code, refused.value.http_status) == ("no_default_ruleset", 503)
            assert "'trial'" in refused.value.message
            assert "publish a ruleset named 'default'" in refused.value.message
            assert agent.queue.jobs.first_for_order("R-1") is None
            assert floor.printers["P1"].labels == []

            head = cloud.publish("ruleset", "default", _ruleset("default", "CHOSEN"))
            await until(lambda: agent.store.revision() == head, what="the default ruleset to sync")
            packed = await agent.packer.pack("R-1", "S1", "with-default")
            assert packed.carrier == "CHOSEN"  # never TRIAL, though it came first
            assert len(floor.printers["P1"].labels) == 1

    run(scenario)


def test_a_wave_is_refused_before_its_run_without_a_default_ruleset(data_dir: Path) -> None:
    floor = Floor()
    cloud = _cloud()
    cloud.publish("ruleset", "trial", _ruleset("trial", "TRIAL"))
    wave = {"id": 7, "warehouse": "WH1", "station": "S1", "order_refs": ["R-1", "R-2"], "created_by": "p"}
    cloud.publish("wave", "7", wave)

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            waves = WavePrinter(
                agent.store,
                agent.cache,
                agent.floor,
                agent.queue,
                agent.labeller,
                agent.outbox,
                agent.metrics,
            )
            with pytest.raises(DocksideError) as refused:
                await waves.print_wave(7, "S1", "wave-1")
            assert refused.value.code == "no_default_ruleset"
            assert agent.store.query("SELECT request_id FROM wave_prints") == []
            assert floor.printers["P1"].labels == []
            head = cloud.publish("ruleset", "default", _ruleset("default", "CHOSEN"))
            await until(lambda: agent.store.revision() == head, what="the default ruleset to sync")
            report = await waves.print_wave(7, "S1", "wave-2")
            assert report["status"] == "done", report
            assert len(floor.printers["P1"].labels) == 2

    run(scenario)


def test_with_no_ruleset_at_all_the_built_in_default_decides(data_dir: Path) -> None:
    floor = Floor()

    async def scenario() -> None:
        async with started(data_dir, _cloud(), floor) as agent:
            packed = await agent.packer.pack("R-2", "S1", "no-rulesets")
            assert (packed.carrier, packed.template) == ("DOCKSIDE", "shipping-4x6")

    run(scenario)
