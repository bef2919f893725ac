"""`POST /api/v1/pack` reads the order reference as the scanner typed it ([scanner] settings).

Through the agent's real HTTP API, a mock ZPL printer on TCP and a mock scale on a pty: a GS1
scan packs the order its AI names, and a scan naming no order answers 422 `scan_unreadable`
with nothing weighed, printed or recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockside.scanning import GS, ScanReader
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

SSCC = "106141411234567897"
SETTINGS = dataclasses.replace(FAST, scan_reader=ScanReader(prefix="*", suffix="#"))
ORDERS = ("PO-7781", "PO-7782", "PO-77")


@pytest.fixture(scope="module")
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0016").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="module")
def scale() -> Iterator[MockScale]:
    mock = MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start()
    mock.set_weight(1000, stable=True)
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory, printer: MockPrinter, scale: MockScale
) -> Iterator[RunningAgent]:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    cloud.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for ref in ORDERS:
        cloud.publish("order", ref, order_body(ref))
    data_dir: Path = tmp_path_factory.mktemp("agent")
    running = RunningAgent(data_dir, cloud, SETTINGS).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()


def _pack(agent: RunningAgent, scan: str, request_id: str) -> httpx.Response:
    assert agent.http is not None
    return agent.http.post(
        "/api/v1/pack", json={"order_ref": scan, "station": "S1", "request_id": request_id}
    )


def _order_job(agent: RunningAgent, ref: str) -> Any:
    assert agent.http is not None
    return agent.http.get(f"/api/v1/orders/{ref}").json()["job"]


@pytest.mark.parametrize(
    ("scan", "ref", "grams"),
    [
        (f"(00){SSCC}(400)PO-7781(10)LOT7", "PO-7781", 1200),
        (f"*]C100{SSCC}400PO-7782{GS}10LOT7#", "PO-7782", 1300),
    ],
)
def test_a_gs1_scan_packs_the_order_its_ai_names(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale, scan: str, ref: str, grams: int
) -> None:
    put_parcel(agent, scale, grams)
    printed = len(printer.labels())

    response = _pack(agent, scan, f"gs1-{ref}")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["order_ref"] == ref
    assert answer["weight_g"] == grams
    assert _order_job(agent, ref)["job_id"] == answer["job_id"]
    # "PO-77" is a prefix of both scans' references: the whole value of AI (400) is the order.
    assert _order_job(agent, "PO-77") is None
    wait_until(lambda: len(printer.labels()) == printed + 1, what="the label at the printer")
    assert f" {ref}" in printer.labels()[-1]["data"]


def _footprint(agent: RunningAgent, printer: MockPrinter) -> tuple[int, int, int]:
    assert agent.agent is not None
    store = agent.agent.store
    jobs, queued = agent.call_on_loop(lambda: (store.count("jobs"), store.count("outbox")))
    return jobs, queued + len(agent.cloud.received), len(printer.labels())


@pytest.mark.parametrize(
    ("scan", "said"),
    [
        ("D" * 5_000, "5,000 characters"),
        ("(40", "brackets"),
        ("PO-7781\x00", "U+0000"),
        (GS * 3, "no field"),
        (f"]C100{SSCC}10LOT7", "(00), (10)"),
        ("PO-7781 OR 1=1", "not an order reference"),
        ("*PO-7781#PO-7782", "not an order reference"),
    ],
)
def test_a_scan_naming_no_order_is_refused_and_nothing_is_weighed_or_printed(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale, scan: str, said: str
) -> None:
    put_parcel(agent, scale, 2222)
    scale_before = agent.status()["stations"][0]["scale"]
    before = _footprint(agent, printer)

    response = _pack(agent, scan, "garbage")

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "scan_unreadable"
    assert said in error["message"]
    assert scan not in error["message"]
    scale_after = agent.status()["stations"][0]["scale"]
    assert scale_after["parcel_ready"]
    assert scale_after["last_used"] == scale_before["last_used"]
    assert _footprint(agent, printer) == before
