"""Bad input at the station gets a clear error in the contract's shape and changes nothing.

The module's tests share one stack (`shared_station`): each uses its own orders, undoes the
faults it sets, and counts the labels printed during the test rather than since the stack started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.stack import Stack, wait_for
from tests.e2e.conftest import Station


@pytest.fixture
def station(shared_station: Station) -> Station:
    """The module's station, back to normal first: printer ready, a new 1234 g parcel on the scale."""
    stack = shared_station.stack
    stack.control("printer", "POST", "/fault", {"fault": "none"})
    stack.control("scale", "POST", "/mode", {"silent": False})
    shared_station.set_weight(0)  # the last test's parcel lifted off
    shared_station.set_weight(1234)
    wait_for(
        lambda: shared_station.status()["stations"][0]["printers"][0]["state"] == "ready",
        timeout=10,
        what="the printer to be ready",
    )
    return shared_station


@pytest.fixture
def stack(station: Station) -> Stack:
    return station.stack


@contextmanager
def _prints_nothing(station: Station) -> Iterator[None]:
    """The block sends no label to the printer."""
    before = station.labels()
    yield
    assert station.labels() == before


def _error(response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"], body
    assert body["error"]["message"], body
    return dict(body["error"])


def _still_packable(station: Station, order_ref: str, request_id: str) -> None:
    """Nothing was recorded by the failed attempt: the order packs normally, one label."""
    before = len(station.labels())
    response = station.pack(order_ref, request_id)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "sent"
    assert len(station.labels()) == before + 1


def test_unknown_order(station: Station) -> None:
    with _prints_nothing(station):
        response = station.pack("NO-SUCH-ORDER", "bad-1")
    assert response.status_code == 404
    assert _error(response)["code"] == "order_not_found"


def test_unknown_station(station: Station) -> None:
    with _prints_nothing(station):
        response = station.pack("E2E-0003", "bad-2", station="S99")
    assert response.status_code == 404
    assert _error(response)["code"] == "station_not_found"
    _still_packable(station, "E2E-0003", "good-2")


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"order_ref": "E2E-0004", "station": "S1", "request_id": ', b"\xff\xfe", b""],
)
def test_malformed_json(station: Station, raw: bytes) -> None:
    with _prints_nothing(station):
        response = station.http.post(
            "/api/v1/pack", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code in {400, 422}
    assert _error(response)["code"] in {"invalid_json", "invalid_input"}


@pytest.mark.parametrize(
    "body",
    [
        {"station": "S1", "request_id": "x"},
        {"order_ref": "E2E-0004", "request_id": "x"},
        {"order_ref": "E2E-0004", "station": "S1"},
        {"order_ref": 42, "station": "S1", "request_id": "x"},
        {"order_ref": "E2E-0004", "station": ["S1"], "request_id": "x"},
        {"order_ref": "E2E-0004^XZ^XA", "station": "S1", "request_id": "x"},
        {"order_ref": "E2E-0004", "station": "S1", "request_id": "x" * 100_000},
        [],
    ],
)
def test_missing_or_wrong_fields(station: Station, body: object) -> None:
    with _prints_nothing(station):
        response = station.http.post("/api/v1/pack", json=body)
    assert 400 <= response.status_code < 500
    error = _error(response)
    assert "Traceback" not in error["message"]


def test_a_scale_that_does_not_answer(stack: Stack, station: Station) -> None:
    stack.control("scale", "POST", "/mode", {"silent": True})
    # The weight read just before it fell silent is still fresh for a moment; the packer scans
    # once the station shows the scale is not answering.
    wait_for(
        lambda: station.status()["stations"][0]["scale"]["state"] == "not_answering",
        timeout=10,
        what="the station to show the scale is not answering",
    )

    with _prints_nothing(station):
        response = station.pack("E2E-0005", "bad-scale")

    assert response.status_code == 503
    error = _error(response)
    assert error["code"] == "scale_not_answering"
    assert "scale" in error["message"]
    stack.control("scale", "POST", "/mode", {"silent": False})
    station.set_weight(1234)
    _still_packable(station, "E2E-0005", "good-scale")


def test_a_printer_that_refuses_connections(stack: Stack, station: Station) -> None:
    """Nothing is sent while the printer refuses; the job is held and prints once by itself later."""
    stack.control("printer", "POST", "/fault", {"fault": "offline"})
    wait_for(
        lambda: station.status()["stations"][0]["printers"][0]["state"] != "ready",
        timeout=10,
        what="the agent's status poll to notice the printer is gone",
    )

    before = len(station.labels())
    with _prints_nothing(station):
        response = station.pack("E2E-0006", "bad-printer")
        assert response.status_code == 202, response.text
        held = response.json()
        assert station.pack("E2E-0006", "rescan").json()["status"] == "already_packed"

    assert held["status"] == "held"
    assert "ZD421-E2E" in held["message"]  # names the printer and says what to do
    assert "prints by itself" in held["message"]
    stack.control("printer", "POST", "/fault", {"fault": "none"})
    wait_for(
        lambda: len(station.labels()) == before + 1, timeout=20, what="the held label to print by itself"
    )
    job = station.http.get(f"/api/v1/jobs/{held['job_id']}", params={"wait_s": "10"}).json()
    assert job["status"] == "printed"
    assert len(station.labels()) == before + 1


def test_a_bad_enrollment_token_is_refused_clearly(stack: Stack, station: Station) -> None:
    output = stack.run(
        [
            "dockside-agent",
            "enroll",
            "--cloud",
            stack.cloud.ready["grpc"],
            "--token",
            "not-a-token",
            "--data-dir",
            str(stack.root / "intruder"),
        ],
        check=False,
    )
    assert "token" in output.lower()
    assert "Traceback" not in output


def test_an_enrollment_token_works_only_once(stack: Stack, station: Station) -> None:
    token = stack.admin_call("POST", "/api/v1/warehouses/WH1/enrollment-tokens", {"ttl_s": 600})["token"]
    stack.run(
        [
            "dockside-agent",
            "enroll",
            "--cloud",
            stack.cloud.ready["grpc"],
            "--token",
            token,
            "--data-dir",
            str(stack.root / "second"),
        ]
    )
    replay = stack.run(
        [
            "dockside-agent",
            "enroll",
            "--cloud",
            stack.cloud.ready["grpc"],
            "--token",
            token,
            "--data-dir",
            str(stack.root / "third"),
        ],
        check=False,
    )
    assert "token" in replay.lower()
    assert "Traceback" not in replay
