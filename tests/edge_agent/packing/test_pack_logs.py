"""The pack path's log: one JSON line per outcome with the ids to find the parcel, secrets masked.

Logging is set up the way `dockside-agent run` does it (the config's [log] section through
`dockside.logs`); a real mock printer on TCP and a real mock scale on a pty do the printing.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import LogSection, configure_logging
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from edge_agent.sync.identity import save_identity
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    FAST,
    RunningAgent,
    order_body,
    publish_warehouse,
    put_parcel,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

CREDENTIAL = "dsa_" + "Q" * 40
# Printers polled every 0.1 s, so a dropped connection is noticed while the test waits.
POLLING = dataclasses.replace(FAST, printer_check_interval_s=0.1)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The agent's JSON log, captured; the root logger is put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    handler = configure_logging(LogSection(level="info", format="json"))
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[RunningAgent, MockPrinter, MockScale]]:
    printer = MockPrinter(port=0, control_port=0, serial="ZLOGS0001").start()
    scale = MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start()
    scale.set_weight(1234, stable=True)
    data_dir = tmp_path / "agent"
    store = Store.open(data_dir)
    save_identity(
        store, agent_id="agent-logs", credential=CREDENTIAL, warehouse="WH1", tenant="t", cloud="memory"
    )
    store.close()
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    cloud.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for n in (1, 2):
        cloud.publish("order", f"L-{n:04d}", order_body(f"L-{n:04d}"))
    running = RunningAgent(data_dir, cloud, POLLING).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running, printer, scale
    finally:
        running.stop()
        printer.stop()
        scale.stop()


def _entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _outcome(stream: io.StringIO, order_ref: str) -> dict[str, Any]:
    """The pack's outcome line: it is logged right after the answer is written, so wait for it."""

    def lines() -> list[dict[str, Any]]:
        entries = _entries(stream)
        return [e for e in entries if e.get("order_ref") == order_ref and e["message"].startswith("pack ")]

    found = wait_until(lines, timeout=30, what=f"the outcome line of {order_ref}")
    assert len(found) == 1, found
    return found[0]


def test_each_pack_outcome_is_one_json_line_with_its_ids(
    json_log: io.StringIO, agent: tuple[RunningAgent, MockPrinter, MockScale]
) -> None:
    running, printer, scale = agent
    printed = running.pack("L-0001", "log-1").json()
    assert printed["status"] == "sent"
    entry = _outcome(json_log, "L-0001")
    assert entry["message"].startswith("pack sent: L-0001")
    assert entry["level"] == "info"
    assert entry["logger"] == "edge_agent.packing.pack"
    assert (entry["job_id"], entry["station"], entry["printer"]) == (printed["job_id"], "S1", "S1-label")

    printer.stop()  # nothing listens: the label is held for the printer
    put_parcel(running, scale, 2100)
    held = running.pack("L-0002", "log-2").json()
    assert held["status"] == "held"
    entry = _outcome(json_log, "L-0002")
    assert entry["message"].startswith("pack held: L-0002")
    assert entry["level"] == "warning"
    assert (entry["job_id"], entry["station"], entry["printer"]) == (held["job_id"], "S1", "S1-label")


def test_a_credential_never_reaches_the_log(
    json_log: io.StringIO, agent: tuple[RunningAgent, MockPrinter, MockScale]
) -> None:
    running, _, _ = agent
    assert running.pack("L-0001", "log-3").status_code == 200
    _outcome(json_log, "L-0001")
    # A careless call that formats the credential into a message is masked all the same.
    logging.getLogger("edge_agent.sync").warning("the cloud refused Bearer %s", CREDENTIAL)
    text = json_log.getvalue()
    assert CREDENTIAL not in text
    assert "Bearer ***" in text
    assert any(e.get("order_ref") == "L-0001" for e in _entries(json_log))


def test_a_label_cut_off_mid_send_logs_a_failed_or_unknown_line_with_its_ids(
    json_log: io.StringIO, agent: tuple[RunningAgent, MockPrinter, MockScale]
) -> None:
    running, printer, _ = agent
    printer.set_fault("drop")  # the printer closes the connection in the middle of the label
    response = running.pack("L-0001", "log-4")
    assert response.status_code >= 400 or response.json()["status"] == "sent", response.text

    def outcome_line() -> dict[str, Any] | None:
        lines = [
            e
            for e in _entries(json_log)
            if e.get("order_ref") == "L-0001" and e["message"].startswith(("pack failed", "pack unknown"))
        ]
        return lines[0] if lines else None

    entry = wait_until(outcome_line, timeout=10, what="the failed/unknown pack line")
    assert entry is not None
    assert entry["level"] == "warning"
    assert (entry["station"], entry["printer"]) == ("S1", "S1-label")
    assert entry["job_id"]
