"""`dockside-agent discover`, the agent's own `_dockside._tcp` advertisement and the discovered
printers it reports to the cloud: real zeroconf on loopback, a real mock scale on a pty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from zeroconf import IPVersion, Zeroconf

from dockside.v1 import sync_pb2 as pb
from edge_agent.agent import Agent
from edge_agent.commands.cli import main
from edge_agent.devices.discovery import AGENT_SERVICE
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import FAST, RunningAgent, publish_warehouse
from tests.edge_agent.waiting import wait_until

LOOPBACK = ["127.0.0.1"]


@pytest.fixture
def advertised_printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(
        port=0, control_port=0, serial="ZLAN000042", advertise=True, advertise_interfaces=LOOPBACK
    ).start()
    try:
        yield mock
    finally:
        mock.stop()


def test_discover_lists_the_lan_printer_and_the_scale_with_its_protocol(
    advertised_printer: MockPrinter, tmp_path: Path
) -> None:
    link = tmp_path / "scale"
    with MockScale(protocol="toledo-8217", control_port=0, link=link, interval_s=0.02):
        result = CliRunner().invoke(
            main,
            ["discover", "--json", "--timeout", "3", "--interface", "127.0.0.1", "--serial", str(link)],
        )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    printer = next(p for p in found["printers"] if p["id"] == "ZLAN000042")
    assert printer["port"] == advertised_printer.port
    assert printer["language"] == "zpl"
    assert printer["station_entry"]["id"] == "ZLAN000042"
    scale = next(s for s in found["scales"] if s["port"] == str(link))
    assert scale["protocol"] == "toledo-8217"
    assert scale["description"] == f"Toledo 8217 on {link}"


def test_discover_in_words_and_without_printers(tmp_path: Path) -> None:
    link = tmp_path / "scale"
    with MockScale(protocol="mt-sics", control_port=0, link=link, interval_s=0.02):
        result = CliRunner().invoke(main, ["discover", "--no-printers", "--serial", str(link)])
    assert result.exit_code == 0, result.output
    assert f"on {link}" in result.output
    assert "MT-SICS" in result.output
    assert "printers" not in result.output
    assert "discover" in CliRunner().invoke(main, ["--help"]).output


def test_the_running_agent_advertises_itself_and_reports_unconfigured_printers(
    advertised_printer: MockPrinter, data_dir: Path
) -> None:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    settings = dataclasses.replace(FAST, advertise=True, lan_interfaces=tuple(LOOPBACK))
    agent = RunningAgent(data_dir, cloud, settings).start()
    try:
        assert agent.agent is not None
        lan = agent.agent
        wait_until(
            lambda: lan.lan is not None and any(p.id == "ZLAN000042" for p in lan.lan.printers()),
            timeout=10,
            what="the agent to see the printer on the LAN",
        )
        zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
        try:
            info = zc.get_service_info(
                AGENT_SERVICE, f"dockside-agent agent-test.{AGENT_SERVICE}", timeout=5000
            )
        finally:
            zc.close()
        assert info is not None
        assert info.port == int(agent.address.rsplit(":", 1)[1])
        assert info.properties[b"warehouse"] == b"WH1"

        assert agent._loop is not None
        report = asyncio.run_coroutine_threadsafe(_report(lan), agent._loop).result(10)
        discovered = [d for d in report.devices if d.state == "discovered"]
        assert [d.id for d in discovered] == ["ZLAN000042"]
        assert discovered[0].address == f"127.0.0.1:{advertised_printer.port}"
        assert "add it to a station" in discovered[0].message
    finally:
        agent.stop()


async def _report(agent: Agent) -> pb.ReportStatusRequest:
    return agent.cloud_report()
