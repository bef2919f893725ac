"""A hostile template at the agent: its job fails with its name and version, the cloud hears of it
once, the version is set aside, and every other station keeps packing.

The first tests drive the Packer and the wave printer in-process with scripted devices (the pack
path's logic); the last one runs a real agent (`run_agent`, its HTTP API with the harness's
local credential, mock printers on TCP and mock scales on ptys) and packs at two stations while
the hostile render runs.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dockside.errors import TemplateOverrun
from dockside.labels import validate_template
from edge_agent.agent import Agent
from edge_agent.packing.waves import WavePrinter
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    put_parcel,
    station_body,
)
from tests.edge_agent.packing.test_pack_rules import STATION, Floor, ScriptedScale, run, started
from tests.edge_agent.waiting import until, wait_until

# The data-dependent power: its sample (weight 1) renders "1", a real parcel does not.
POWER = "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }} {{ (((parcel.weight_g)**64)**64)**64 }}^FS^XZ"
# Loops whose turns grow with the weight: one turn for the sample, millions for a real parcel.
LOOPS = (
    "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }}"
    "{% for a in 'x' * parcel.weight_g %}{% for b in 'x' * parcel.weight_g %}{% endfor %}{% endfor %}^FS^XZ"
)
FIXED = "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }} {{ parcel.weight_g }} g^FS^XZ"
SAMPLE = {"order": {"order_ref": "SAMPLE-1"}, "parcel": {"weight_g": 1}}
RULESET = {
    "default": {"carrier": "UPS", "service": "ground", "template": "shipping-4x6"},
    "rules": [{"name": "hostile", "when": "service_level == 'hostile'", "then": {"template": "hostile-4x6"}}],
}


class _Scale(ScriptedScale):
    """The scripted scale, plus what the packer tells a scale reader at start (its last used weight)."""

    remembered = False

    def remember_used(self, used: Any) -> None:
        self.remembered = True


class _Floor(Floor):
    def scale(self, config: Any) -> ScriptedScale:
        self.scales.append(_Scale(config))
        return self.scales[-1]


def _publish_template(cloud: MemoryTransport, source: str, version: int) -> None:
    # The cloud validates a version with its sample before it stores it; these pass.
    assert validate_template("zpl", source, SAMPLE, width_dots=812, height_dots=1218)
    body = {
        "name": "hostile-4x6",
        "version": version,
        "language": "zpl",
        "source": source,
        "sample_data": SAMPLE,
        "width_dots": 812,
        "height_dots": 1218,
        "dpi": 203,
        "active": True,
    }
    cloud.publish("template_version", f"hostile-4x6@{version}", body)


def _cloud(source: str) -> MemoryTransport:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    cloud.publish("station", "S1", STATION)
    second = {**STATION, "code": "S2", "printers": [{**STATION["printers"][0], "id": "P2"}]}  # type: ignore[dict-item]
    cloud.publish("station", "S2", second)
    cloud.publish("ruleset", "default", RULESET)
    _publish_template(cloud, source, 3)
    for n in range(1, 5):
        cloud.publish("order", f"H-{n}", order_body(f"H-{n}", service_level="hostile"))
        cloud.publish("order", f"N-{n}", order_body(f"N-{n}"))
    return cloud


def _raised(agent: Agent, cloud: MemoryTransport) -> list[dict[str, Any]]:
    """The `exception_raised` events still in the outbox or already delivered to the cloud."""
    rows = agent.store.query(
        "SELECT event_id, order_ref, station, body FROM outbox WHERE kind = 'exception_raised'"
    )
    events = {row["event_id"]: (row["order_ref"], row["station"], row["body"]) for row in rows}
    for event in cloud.received.values():
        if event.kind == "exception_raised":
            events[event.event_id] = (event.order_ref, event.station, event.body)
    return [
        {**json.loads(body), "order_ref": ref, "station": station} for ref, station, body in events.values()
    ]


@pytest.mark.parametrize("source", [POWER, LOOPS], ids=["power", "loops"])
def test_a_template_that_overruns_fails_its_job_by_name_and_is_set_aside(data_dir: Path, source: str) -> None:
    floor = _Floor()
    cloud = _cloud(source)

    async def scenario() -> None:
        async with started(data_dir, cloud, floor) as agent:
            compiled = agent.cache.templates.get("hostile-4x6").compiled
            assert compiled is not None
            renders: list[int] = []
            real_render = compiled.render

            def counted(context: Any, *args: Any) -> bytes:
                renders.append(1)
                return real_render(context, *args)

            compiled.render = counted  # type: ignore[method-assign]

            with pytest.raises(TemplateOverrun) as first:
                await agent.packer.pack("H-1", "S1", "h-1")
            message = first.value.message
            assert message.startswith("template hostile-4x6 v3 exceeded its render budget: ")
            assert "fix the template and publish a new version" in message
            assert first.value.http_status == 422
            assert agent.queue.jobs.first_for_order("H-1") is None  # no job, nothing printed
            assert floor.printers["P1"].labels == []
            (raised,) = _raised(agent, cloud)
            assert raised["reason"] == "template_over_budget"
            assert raised["template"] == "hostile-4x6"
            assert raised["template_version"] == 3
            assert raised["message"] == message
            assert (raised["order_ref"], raised["station"]) == ("H-1", "S1")

            # Another station packs with another template as usual.
            printed = await agent.packer.pack("N-1", "S2", "n-1")
            assert printed.status == "sent"
            assert printed.template == "shipping-4x6"
            assert len(floor.printers["P2"].labels) == 1

            # The next pack that needs the version fails at once, the same way, without rendering.
            with pytest.raises(TemplateOverrun) as again:
                await agent.packer.pack("H-2", "S2", "h-2")
            assert again.value.message == message
            assert len(renders) == 1
            assert len(_raised(agent, cloud)) == 1

            # A new version replaces the one set aside, and the order packs.
            _publish_template(cloud, FIXED, 4)
            await until(lambda: agent.store.revision() == cloud.head, what="the fixed version")
            fixed = await agent.packer.pack("H-1", "S1", "h-1-again")
            assert fixed.status == "sent"
            assert b"H-1 1500 g" in floor.printers["P1"].labels[-1]

    run(scenario)


def test_a_wave_skips_the_labels_of_a_template_set_aside_and_prints_the_rest(data_dir: Path) -> None:
    floor = _Floor()
    cloud = _cloud(POWER)
    wave = {"id": 9, "warehouse": "WH1", "station": "S1", "order_refs": ["H-3", "N-2", "H-4", "N-3"]}
    cloud.publish("wave", "9", wave)

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
            report = await waves.print_wave(9, "S1", "wave-9")
            assert report["printed"] == 2
            assert [job["order_ref"] for job in report["jobs"]] == ["N-2", "N-3"]
            skipped = {entry["order_ref"]: entry for entry in report["skipped"]}
            assert set(skipped) == {"H-3", "H-4"}
            for entry in skipped.values():
                assert entry["code"] == "template_unsafe"
                assert entry["message"].startswith("template hostile-4x6 v3 exceeded its render budget: ")
            assert len(_raised(agent, cloud)) == 1
            assert len(floor.printers["P1"].labels) == 2

    run(scenario)


# -- a real agent over HTTP --------------------------------------------------------------------------


@pytest.fixture
def devices() -> Any:
    printers = [MockPrinter(port=0, control_port=0, serial=f"ZHOST000{n}").start() for n in (1, 2)]
    scales = [MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start() for _ in (1, 2)]
    try:
        yield printers, scales
    finally:
        for printer in printers:
            printer.stop()
        for scale in scales:
            scale.stop()


def test_while_a_hostile_render_runs_another_station_packs_and_healthz_answers(
    data_dir: Path, devices: Any
) -> None:
    printers, scales = devices
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    for code, printer, scale in zip(("S1", "S2"), printers, scales, strict=True):
        assert scale.pty_path
        cloud.publish("station", code, station_body(code, printer, scale.pty_path))
    cloud.publish("ruleset", "default", RULESET)
    _publish_template(cloud, LOOPS, 3)
    for n in (1, 2):
        cloud.publish("order", f"H-{n}", order_body(f"H-{n}", service_level="hostile"))
        cloud.publish("order", f"N-{n}", order_body(f"N-{n}"))
    agent = RunningAgent(data_dir, cloud).start()
    try:
        agent.wait_synced()
        put_parcel(agent, scales[0], 1500, station=0)
        put_parcel(agent, scales[1], 900, station=1)
        assert agent.http is not None
        http = agent.http
        with ThreadPoolExecutor(max_workers=3) as pool:
            hostile = pool.submit(agent.pack, "H-1", "h-1", "S1")
            other = pool.submit(agent.pack, "N-1", "n-1", "S2")
            health = [pool.submit(http.get, "/healthz") for _ in range(5)]
            failed, printed = hostile.result(timeout=30), other.result(timeout=30)
            assert all(probe.result(timeout=30).status_code == 200 for probe in health)

        assert failed.status_code == 422
        error = error_of(failed)
        assert error["code"] == "template_over_budget"
        assert error["message"].startswith("template hostile-4x6 v3 exceeded its render budget: ")
        assert printed.status_code == 200, printed.text
        assert printed.json()["status"] == "sent"
        wait_until(lambda: printers[1].labels(), what="the other station's label at its printer")
        assert printers[0].labels() == []

        # The same template again, at the other station: the same answer, at once.
        put_parcel(agent, scales[1], 700, station=1)
        second = agent.pack("H-2", "h-2", "S2")
        assert second.status_code == 422
        assert error_of(second) == error
        assert http.get("/healthz").status_code == 200

        # The cloud hears of it once, from the outbox.
        raised = wait_until(lambda: agent.events("exception_raised"), what="the exception at the cloud")
        assert len(raised) == 1
        body = json.loads(raised[0].body)
        assert (body["reason"], body["template"], body["template_version"]) == (
            "template_over_budget",
            "hostile-4x6",
            3,
        )
    finally:
        agent.stop()
