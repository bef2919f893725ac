"""Printer faults and scale commands through the agent's real API: fallback routing, held jobs over
a restart, zero and tare, the schema step that allows held jobs.

Real mock printers on TCP and a real mock scale on a pty; the agent polls its printers every
0.1 s here so a test waits for conditions, never for a fixed time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge_agent.store.database import Store
from edge_agent.store.migrations import MigrationRegistry, m0001_foundation
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

POLLING = dataclasses.replace(FAST, printer_check_interval_s=0.1, scale_watchdog_interval_s=0.1)


@pytest.fixture
def printers() -> Iterator[tuple[MockPrinter, MockPrinter]]:
    primary = MockPrinter(port=0, control_port=0, serial="ZPRIMARY1").start()
    spare = MockPrinter(port=0, control_port=0, serial="ZSPARE001").start()
    try:
        yield primary, spare
    finally:
        primary.stop()
        spare.stop()


def _cloud(primary: MockPrinter, spare: MockPrinter, scale: MockScale) -> MemoryTransport:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    station = station_body("S1", primary, scale.pty_path)
    station["printers"].append(
        {
            "id": "S1-spare",
            "role": "label-fallback",
            "language": "zpl",
            "host": "127.0.0.1",
            "port": spare.port,
            "model": "ZD421",
        }
    )
    cloud.publish("station", "S1", station)
    cloud.publish("station", "S2", {"code": "S2", "printers": [], "scale": None})
    for n in range(1, 11):
        cloud.publish("order", f"F-{n:04d}", order_body(f"F-{n:04d}"))
    return cloud


@pytest.fixture
def cloud(printers: tuple[MockPrinter, MockPrinter], scale: MockScale) -> MemoryTransport:
    return _cloud(*printers, scale)


def _started(data_dir: Path, cloud: MemoryTransport) -> RunningAgent:
    running = RunningAgent(data_dir, cloud, POLLING).start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = _started(data_dir, cloud)
    try:
        yield running
    finally:
        running.stop()


def _printer(agent: RunningAgent, printer_id: str) -> dict[str, Any]:
    printers = agent.status()["stations"][0]["printers"]
    return dict(next(p for p in printers if p["id"] == printer_id))


def _fields(printer: MockPrinter) -> str:
    return "\n".join(field for label in printer.labels() for field in label["fields"])


def test_a_faulted_printer_sends_its_labels_to_the_station_fallback(
    agent: RunningAgent, printers: tuple[MockPrinter, MockPrinter], scale: MockScale
) -> None:
    primary, spare = printers
    primary.set_fault("head_open")
    wait_until(lambda: _printer(agent, "S1-label")["state"] == "fault", what="the poll to see the open head")

    response = agent.pack("F-0001", "fallback-1")

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "sent"
    assert answer["printer"] == "S1-spare"
    assert "ZD421 S1-label at S1 has its print head open" in answer["message"]
    assert "printed on ZD421 S1-spare instead" in answer["message"]
    spare.wait_for_labels(1)
    assert "F-0001" in _fields(spare)

    primary.set_fault("none")
    wait_until(lambda: _printer(agent, "S1-label")["state"] == "ready", what="the primary to be ready")
    put_parcel(agent, scale, 2100)
    assert agent.pack("F-0002", "fallback-2").json()["printer"] == "S1-label"
    primary.wait_for_labels(1)
    assert "F-0001" not in _fields(primary)  # never printed twice
    assert len(spare.labels()) == 1


def test_with_both_printers_faulted_the_label_waits_for_the_primary(
    agent: RunningAgent, printers: tuple[MockPrinter, MockPrinter]
) -> None:
    primary, spare = printers
    primary.set_fault("paper_out")
    spare.set_fault("paused")
    wait_until(
        lambda: (
            _printer(agent, "S1-label")["state"] == "fault"
            and _printer(agent, "S1-spare")["state"] == "fault"
        ),
        what="both faults to be seen",
    )
    held = agent.pack("F-0003", "both-down")
    assert held.status_code == 202
    assert held.json()["printer"] == "S1-label"
    assert "out of labels" in held.json()["message"]
    spare.set_fault("none")
    primary.set_fault("none")
    primary.wait_for_labels(1)
    assert spare.labels() == []


def test_a_held_job_survives_a_restart_and_prints_once(
    data_dir: Path, cloud: MemoryTransport, printers: tuple[MockPrinter, MockPrinter]
) -> None:
    primary, spare = printers
    primary.set_fault("offline")
    spare.set_fault("offline")
    first = _started(data_dir, cloud)
    try:
        wait_until(
            lambda: _printer(first, "S1-label")["state"] == "offline", what="the printer to be offline"
        )
        held = first.pack("F-0004", "before-restart").json()
        assert held["status"] == "held"
    finally:
        first.stop()
    primary.set_fault("none")
    spare.set_fault("none")
    second = _started(data_dir, cloud)
    try:
        # Held means nothing was sent: after a restart it is still held (not unknown) and goes out.
        primary.wait_for_labels(1)
        assert second.http is not None
        wait_until(
            lambda: second.http.get(f"/api/v1/jobs/{held['job_id']}").json()["status"] == "printed",  # type: ignore[union-attr]
            what="the held job to print after the restart",
        )
        assert len(primary.labels()) == 1
        wait_until(lambda: second.events("label_printed"), what="the label_printed event")
        kinds = [event.kind for event in second.events()]
        assert kinds.count("label_held") == 1
        assert kinds.count("label_printed") == 1
        assert "job_unknown" not in kinds
    finally:
        second.stop()


def test_zero_and_tare_from_the_station(agent: RunningAgent, scale: MockScale) -> None:
    assert agent.http is not None
    scale.set_weight(400, stable=True)
    wait_until(lambda: agent.status()["stations"][0]["scale"]["weight_g"] == 400, what="the box on the scale")

    tared = agent.http.post("/api/v1/stations/S1/scale/tare")

    assert tared.status_code == 200, tared.text
    assert tared.json()["done"] == "tare"
    wait_until(lambda: agent.status()["stations"][0]["scale"]["weight_g"] == 0, what="the net weight")
    scale.set_weight(0, stable=True)
    zeroed = agent.http.post("/api/v1/stations/S1/scale/zero")
    assert zeroed.status_code == 200, zeroed.text
    assert zeroed.json()["done"] == "zero"

    missing = agent.http.post("/api/v1/stations/NOPE/scale/zero")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "station_not_found"
    no_scale = agent.http.post("/api/v1/stations/S2/scale/tare")
    assert error_of(no_scale)["code"] == "scale_not_configured"
    devices = agent.http.get("/api/v1/stations/S1/devices").json()
    assert [p["id"] for p in devices["printers"]] == ["S1-label", "S1-spare"]


def test_a_scale_that_refuses_to_zero_says_why(agent: RunningAgent, scale: MockScale) -> None:
    assert agent.http is not None
    scale.set_mode(swing=True)
    refused = agent.http.post("/api/v1/stations/S1/scale/zero")
    assert refused.status_code >= 400
    error = error_of(refused)
    assert error["code"].startswith("scale_")


def test_an_unplugged_scale_is_reported_and_found_again(agent: RunningAgent, scale: MockScale) -> None:
    scale.set_mode(unplug=True)
    wait_until(
        lambda: agent.status()["stations"][0]["scale"]["state"] in ("unplugged", "not_answering"),
        timeout=30,  # a deadline against a hang: under load the reader's retries take longer than 5 s
        what="the agent to see the scale gone",
    )
    scale.set_mode(unplug=False)
    wait_until(lambda: scale_settled(agent), timeout=30, what="the scale to be found again")
    assert agent.pack("F-0005", "after-replug").status_code == 200


def test_the_held_jobs_migration_keeps_old_jobs(tmp_path: Path) -> None:
    first = MigrationRegistry()
    first.register(m0001_foundation)
    old = Store.connect(tmp_path / "agent.db", migrations=first)
    columns = "job_id, order_ref, station, printer, status, label, decision, created_at_ms, updated_at_ms"
    row = "'R', 'S1', 'P', 'printed', x'00', '{}'"
    old.conn.execute(f"INSERT INTO jobs ({columns}) VALUES ('a', {row}, 1, 1)")
    old.conn.execute(f"INSERT INTO jobs ({columns}, reprint_of) VALUES ('b', {row}, 2, 2, 'a')")
    old.close()
    store = Store.connect(tmp_path / "agent.db")
    try:
        assert store.conn.execute(
            "SELECT job_id, reprint_of, message FROM jobs ORDER BY job_id"
        ).fetchall() == [
            ("a", None, ""),
            ("b", "a", ""),
        ]
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        store.conn.execute("UPDATE jobs SET status = 'held' WHERE job_id = 'a'")  # allowed now
    finally:
        store.close()


class VanishingZebra:
    """A raw-TCP Zebra that answers its identity and ~HS, then vanishes on `vanish()`.

    Vanished, it closes the connection and its port turns into a black hole: the port still
    listens, but its accept queue is full, so a new connection attempt hangs until the caller's
    connect timeout (as a printer that lost power or its network does).
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._clients: list[socket.socket] = []
        self._hole: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            sockets = [self.server, *self._clients]
            try:
                readable, _, _ = select.select(sockets, [], [], 0.02)
            except (OSError, ValueError):
                continue
            for sock in readable:
                if sock is self.server:
                    with contextlib.suppress(OSError):
                        self._clients.append(self.server.accept()[0])
                    continue
                with contextlib.suppress(OSError):
                    data = sock.recv(65536)
                    if b"getvar" in data:
                        sock.sendall(b'"XXZJVANISH1"')
                    if b"~HS" in data:
                        sock.sendall(
                            b"\x02030,0,0,1218,000,0,0,0,000,0,0,0\x03\r\n"
                            b"\x02001,0,0,0,0,2,4,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n"
                        )

    def vanish(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self._clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.server.close()
        hole = socket.socket()
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", self.port))
        hole.listen(0)
        filler = socket.create_connection(("127.0.0.1", self.port))  # fills the accept queue
        self._hole = [hole, filler]

    def close(self) -> None:
        if not self._stop.is_set():
            self.vanish()
        for sock in self._hole:
            sock.close()


def test_a_printer_that_vanishes_never_freezes_the_other_stations(data_dir: Path, printers: Any) -> None:
    vanishing = VanishingZebra()
    healthy, _ = printers
    scales = [MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start() for _ in range(2)]
    running: RunningAgent | None = None
    try:
        cloud = MemoryTransport()
        publish_warehouse(cloud)
        for code, scale, port in (("S1", scales[0], vanishing.port), ("S2", scales[1], healthy.port)):
            scale.set_weight(1234, stable=True)
            assert scale.pty_path
            cloud.publish("station", code, station_body(code, healthy, scale.pty_path, printer_port=port))
        for n in range(1, 4):
            cloud.publish("order", f"V-{n:04d}", order_body(f"V-{n:04d}"))
        running = RunningAgent(data_dir, cloud, FAST).start()
        running.wait_synced()
        agent = running
        assert agent.http is not None
        wait_until(lambda: _printer(agent, "S1-label")["state"] == "ready", what="S1's printer connected")
        wait_until(
            lambda: all(s["scale"]["parcel_ready"] for s in agent.status()["stations"]), what="parcels"
        )
        assert agent.pack("V-0001", "v-1").json()["status"] == "sent"  # on the open connection

        vanishing.vanish()  # closes the connection; reconnecting now hangs until the connect timeout
        put_parcel(agent, scales[0], 2100)
        with ThreadPoolExecutor(max_workers=1) as pool:
            stalled = pool.submit(agent.pack, "V-0002", "v-2")

            def sending() -> bool:
                rows = agent.call_on_loop(
                    lambda: agent.agent.store.query("SELECT status FROM jobs WHERE order_ref = 'V-0002'")  # type: ignore[union-attr]
                )
                return bool(rows) and rows[0]["status"] == "sending"

            # The agent's loop answers while S1's printer is being reconnected in its own thread.
            wait_until(sending, what="V-0002's job recorded and its label being sent")
            health = agent.http.get("/healthz")
            other = agent.pack("V-0003", "v-3", station="S2")
            answered_while_stalled = not stalled.done()
            result = stalled.result(timeout=30)

        assert health.status_code == 200
        assert other.json()["status"] == "sent", other.text
        assert answered_while_stalled, "/healthz and S2 were answered only after S1's send ended"
        held = result.json()
        assert held["status"] == "held", result.text
        assert "S1-label at S1 is offline" in held["message"]
        assert "prints by itself" in held["message"]
    finally:
        if running is not None:
            running.stop()
        vanishing.close()
        for scale in scales:
            scale.stop()
