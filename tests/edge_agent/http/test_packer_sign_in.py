"""A packer signs in at a station through the agent's real HTTP API (badge or PIN, checked against
the argon2 hashes the cloud synced), and the jobs and events made there carry them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from edge_agent.packing.packers import MAX_FAILURES
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

# Cheap parameters for the tests' speed: the agent verifies with whatever the hash names.
_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
ANA = {"id": 7, "name": "Ana Li", "badge": "B-0007", "pin_hash": _HASHER.hash("4821")}
BO = {"id": 8, "name": "Bo Chen", "badge": None, "pin_hash": _HASHER.hash("135790")}


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0002").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def cloud(printer: MockPrinter, scale: MockScale) -> MemoryTransport:
    memory = MemoryTransport()
    publish_warehouse(memory)
    assert scale.pty_path
    memory.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    memory.publish("packer", "7", ANA)
    memory.publish("packer", "8", BO)
    # Unusable bodies are refused, the stream goes on: a clear PIN, a key that is not the id.
    memory.publish("packer", "9", {"id": 9, "name": "Clear", "badge": None, "pin_hash": "1234"})
    memory.publish("packer", "10", {"id": 11, "name": "Wrong key", "badge": "B-11", "pin_hash": None})
    memory.publish("order", "P-0001", order_body("P-0001"))
    memory.publish("order", "P-0002", order_body("P-0002"))
    return memory


def _start(data_dir: Path, cloud: MemoryTransport) -> RunningAgent:
    running = RunningAgent(data_dir, cloud).start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = _start(data_dir, cloud)
    try:
        yield running
    finally:
        running.stop()


def _packer(agent: RunningAgent, station: str = "S1") -> Any:
    assert agent.http is not None
    answer = agent.http.get(f"/api/v1/stations/{station}/packer")
    assert answer.status_code == 200, answer.text
    return answer.json()["packer"]


def _sign_in(agent: RunningAgent, body: dict[str, Any], station: str = "S1") -> Any:
    assert agent.http is not None
    return agent.http.post(f"/api/v1/stations/{station}/packer", json=body)


def test_a_badge_signs_in_and_the_pack_job_and_its_events_carry_the_packer(
    agent: RunningAgent, scale: MockScale
) -> None:
    assert _packer(agent) is None
    signed = _sign_in(agent, {"badge": "B-0007"})
    assert signed.status_code == 200, signed.text
    assert signed.json()["packer"] == {"id": 7, "name": "Ana Li"}
    assert _packer(agent) == {"id": 7, "name": "Ana Li"}

    packed = agent.pack("P-0001", "req-1")
    assert packed.status_code == 200, packed.text
    job_id = packed.json()["job_id"]
    assert agent.http is not None
    assert agent.http.get(f"/api/v1/jobs/{job_id}").json()["packer"] == 7
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(lambda: store.query("SELECT packer FROM jobs WHERE job_id = ?", (job_id,)))
    assert [row["packer"] for row in rows] == [7]
    # order_packed, weight_captured, label_printed, and label_confirmed once the printer confirmed it
    wait_until(lambda: len(agent.events()) == 4, what="the four pack events at the cloud")
    for event in agent.events():
        assert json.loads(event.body)["packer"] == 7, event.kind
    # A reprint, a close and a void at S1 carry the packer signed in there too.
    reprint = agent.http.post(f"/api/v1/jobs/{job_id}/reprint", json={"reason": "smudged"})
    assert reprint.status_code == 200, reprint.text
    assert agent.http.get(f"/api/v1/jobs/{reprint.json()['job_id']}").json()["packer"] == 7
    closed = agent.http.post("/api/v1/orders/P-0001/close", json={"reason": "one carton"})
    assert closed.status_code == 200, closed.text
    voided = agent.http.post("/api/v1/orders/P-0001/parcels/1/void", json={"reason": "torn"})
    assert voided.status_code == 200, voided.text
    kinds = ("label_reprinted", "order_closed", "parcel_voided")
    wait_until(lambda: {e.kind for e in agent.events()} >= set(kinds), what="the reprint, close and void")
    for event in agent.events():
        if event.kind in kinds:
            assert (json.loads(event.body)["packer"], event.station) == (7, "S1"), event.kind

    out = agent.http.delete("/api/v1/stations/S1/packer")
    assert out.status_code == 200
    assert out.json()["packer"] is None
    assert _packer(agent) is None
    put_parcel(agent, scale, 2100)
    second = agent.pack("P-0002", "req-2")
    assert second.status_code == 200, second.text
    assert agent.http.get(f"/api/v1/jobs/{second.json()['job_id']}").json()["packer"] is None


def test_a_pin_signs_in_the_packer_it_belongs_to_and_a_wrong_one_says_so(agent: RunningAgent) -> None:
    wrong = _sign_in(agent, {"pin": "000000"})
    assert wrong.status_code == 401
    assert error_of(wrong)["code"] == "packer_not_recognised"
    assert "PIN" in error_of(wrong)["message"]
    unknown_badge = _sign_in(agent, {"badge": "B-9999"})
    assert unknown_badge.status_code == 401
    assert "badge" in error_of(unknown_badge)["message"]
    # A refused body (a clear PIN, a wrong key) never became a packer.
    assert _sign_in(agent, {"badge": "B-11"}).status_code == 401
    assert _sign_in(agent, {"pin": "1234"}).status_code == 401

    right = _sign_in(agent, {"pin": "135790"})
    assert right.status_code == 200, right.text
    assert right.json()["packer"] == {"id": 8, "name": "Bo Chen"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"badge": "B-0007", "pin": "4821"},
        {"pin": "12"},
        {"pin": "123456789"},
        {"pin": 4821},
        {"badge": "B" * 65},
        {"badge": "B\x00"},
        {"badge": "B 7"},
        {"badge": "B-0007", "station": "S2"},
    ],
)
def test_a_malformed_sign_in_is_refused_and_signs_no_one_in(
    agent: RunningAgent, body: dict[str, Any]
) -> None:
    answer = _sign_in(agent, body)
    assert answer.status_code == 422, answer.text
    assert _packer(agent) is None


def test_the_packer_routes_need_the_local_credential(agent: RunningAgent) -> None:
    with httpx.Client(base_url=f"http://{agent.address}", timeout=10) as anonymous:
        for method in ("GET", "POST", "DELETE"):
            body = {"badge": "B-0007"} if method == "POST" else None
            answer = anonymous.request(method, "/api/v1/stations/S1/packer", json=body)
            assert answer.status_code == 401, (method, answer.text)
    assert _packer(agent) is None


def test_an_unknown_station_answers_404(agent: RunningAgent) -> None:
    assert agent.http is not None
    for method in ("GET", "DELETE"):
        answer = agent.http.request(method, "/api/v1/stations/S9/packer")
        assert answer.status_code == 404
        assert error_of(answer)["code"] == "station_not_found"
    answer = _sign_in(agent, {"badge": "B-0007"}, station="S" * 40)
    assert answer.status_code == 404


def test_guessing_pins_is_stopped_after_five_failures_at_the_station(agent: RunningAgent) -> None:
    for guess in range(MAX_FAILURES):
        assert _sign_in(agent, {"pin": f"{guess:04d}"}).status_code == 401
    throttled = _sign_in(agent, {"pin": "4821"})
    assert throttled.status_code == 429
    assert error_of(throttled)["code"] == "too_many_attempts"
    assert "wait" in error_of(throttled)["message"]
    assert _sign_in(agent, {"badge": "B-0007"}).status_code == 429
    assert _packer(agent) is None


def test_the_signed_in_packer_survives_a_restart_and_leaves_when_disabled(
    data_dir: Path, cloud: MemoryTransport
) -> None:
    running = _start(data_dir, cloud)
    try:
        assert _sign_in(running, {"badge": "B-0007"}).status_code == 200
    finally:
        running.stop()
    running = _start(data_dir, cloud)
    try:
        assert _packer(running) == {"id": 7, "name": "Ana Li"}
        cloud.publish("packer", "7", None)  # disabled in the cloud
        running.wait_synced()
        assert _packer(running) is None
        assert _sign_in(running, {"pin": "4821"}).status_code == 401
    finally:
        running.stop()
