"""Broken, hostile and oversized pack requests: a clear error in the contract's shape, nothing changed.

These tests share one agent (module scope) because each one must leave it exactly as it found it;
the `unchanged` fixture checks that no job, label or event appeared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until
from tests.sockets import assert_no_delayed_ack_wait


@pytest.fixture(scope="module")
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0002").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, printer: MockPrinter) -> Iterator[RunningAgent]:
    scale = MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start()
    scale.set_weight(1234, stable=True)
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    cloud.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    cloud.publish("order", "T-0001", order_body("T-0001"))
    data_dir: Path = tmp_path_factory.mktemp("agent")
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()
        scale.stop()


def _footprint(agent: RunningAgent, printer: MockPrinter) -> tuple[int, int, int]:
    assert agent.agent is not None
    store = agent.agent.store
    jobs, queued = agent.call_on_loop(lambda: (store.count("jobs"), store.count("outbox")))
    return jobs, queued + len(agent.cloud.received), len(printer.labels())


@pytest.fixture
def unchanged(agent: RunningAgent, printer: MockPrinter) -> Iterator[None]:
    before = _footprint(agent, printer)
    yield
    assert _footprint(agent, printer) == before, "a refused request changed something"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"order_ref": "T-0001", "station": "S1", "request_id": ',
        b"\xff\xfe",
        b"",
        b"\x00",
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_malformed_json_is_400(agent: RunningAgent, raw: bytes) -> None:
    assert agent.http is not None
    response = agent.http.post("/api/v1/pack", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_json"
    assert "order_ref, station and request_id" in error["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"station": "S1", "request_id": "x"}, "order_ref is missing"),
        ({"order_ref": "T-0001", "request_id": "x"}, "station is missing"),
        ({"order_ref": "T-0001", "station": "S1"}, "request_id is missing"),
        ({"order_ref": 42, "station": "S1", "request_id": "x"}, "order_ref must be a text"),
        ({"order_ref": "T-0001", "station": ["S1"], "request_id": "x"}, "station must be a text"),
        ({"order_ref": None, "station": "S1", "request_id": "x"}, "order_ref must be a text"),
        ({"order_ref": "T-0001", "station": "S1", "request_id": "x", "force": True}, "force is not a field"),
        ([], "the body must be a JSON object"),
        ("T-0001", "the body must be a JSON object"),
        (0, "the body must be a JSON object"),
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_missing_or_wrong_fields_are_422_naming_the_field(agent: RunningAgent, body: Any, named: str) -> None:
    assert agent.http is not None
    response = agent.http.post("/api/v1/pack", json=body)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert named in error["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"order_ref": "T-0001^XZ^XA^FDpwned"},
        {"order_ref": "../../etc/passwd"},
        {"order_ref": "T-0001\x00"},
        {"order_ref": "T-0001 OR 1=1"},
        {"order_ref": "\uff34-0001"},  # a fullwidth T
        {"order_ref": ""},
        {"order_ref": "T" * 65},
        {"station": "S1\n"},
        {"station": "<script>alert(1)</script>"},
        {"request_id": "has space"},
        {"request_id": "\u202egnp.exe"},
        {"request_id": "x" * 129},
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_hostile_values_are_refused(agent: RunningAgent, fields: dict[str, str]) -> None:
    response = agent.pack(**{"order_ref": "T-0001", "request_id": "hostile", "station": "S1", **fields})

    assert response.status_code == 422, response.text
    error = error_of(response)
    assert len(error["message"]) < 500
    for value in fields.values():
        if len(value) > 3:
            assert value not in error["message"], "the hostile value must not be echoed back"


@pytest.mark.usefixtures("unchanged")
def test_an_oversized_body_is_413(agent: RunningAgent) -> None:
    assert agent.http is not None
    body = {"order_ref": "T-0001", "station": "S1", "request_id": "x" * 200_000}

    declared = agent.http.post("/api/v1/pack", json=body)

    def chunks() -> Iterator[bytes]:
        yield b'{"order_ref": "T-0001", "station": "S1", "request_id": "'
        for _ in range(100):
            yield b"y" * 4096
        yield b'"}'

    streamed = agent.http.post("/api/v1/pack", content=chunks(), headers={"content-type": "application/json"})

    for response in (declared, streamed):
        assert response.status_code == 413
        assert error_of(response)["code"] == "body_too_large"


@pytest.mark.usefixtures("unchanged")
def test_unknown_paths_and_methods_answer_in_the_contract_shape(agent: RunningAgent) -> None:
    assert agent.http is not None
    missing = agent.http.get("/api/v1/nothing-here")
    wrong_method = agent.http.get("/api/v1/pack")
    no_job = agent.http.get("/api/v1/jobs/0123456789abcdef")
    long_job = agent.http.get("/api/v1/jobs/" + "a" * 500)
    no_order = agent.http.get("/api/v1/orders/NOPE")

    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["code"] == "method_not_allowed"
    for response in (no_job, long_job):
        assert response.status_code == 404
        assert error_of(response)["code"] == "job_not_found"
    assert error_of(no_order)["code"] == "order_not_found"


@pytest.mark.usefixtures("unchanged")
def test_a_reprint_body_is_checked_like_a_pack_body(agent: RunningAgent) -> None:
    assert agent.http is not None
    not_json = agent.http.post(
        "/api/v1/jobs/abc/reprint", content=b"{", headers={"content-type": "application/json"}
    )
    too_long = agent.http.post("/api/v1/jobs/abc/reprint", json={"reason": "r" * 501})
    wrong = agent.http.post("/api/v1/jobs/abc/reprint", json={"reason": 7})

    assert not_json.status_code == 400
    assert error_of(not_json)["code"] == "invalid_json"
    assert too_long.status_code == 422
    assert "reason is longer than 500 characters" in error_of(too_long)["message"]
    assert wrong.status_code == 422
    assert "reason must be a text" in error_of(wrong)["message"]


def test_answers_are_not_held_back_by_delayed_acks(agent: RunningAgent) -> None:
    """Accepted connections have TCP_NODELAY (no ~40 ms wait for a delayed ACK) and stay open."""
    assert_no_delayed_ack_wait(agent.address)
