"""Parcels and tracking numbers through the agent's real HTTP API, a mock ZPL printer and scale.

Each parcel's label prints at most once; the tracking number comes from the carrier account the
cloud synced (a leased range number, the OMS's, or the job-id reference without an account);
packing goes on offline until the leased block runs out, then labels wait for more numbers; close records
the parcels labelled. Expected numbers are computed with python-stdnum, not the agent's code.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stdnum import ean

from dockside.errors import SyncError
from edge_agent.store.database import Store
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


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZPARCELS1").start()
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
    for n in range(1, 6):
        memory.publish("order", f"P-{n:04d}", order_body(f"P-{n:04d}"))
    return memory


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()


def pack(agent: RunningAgent, ref: str, request_id: str, **extra: Any) -> Any:
    assert agent.http is not None
    return agent.http.post(
        "/api/v1/pack", json={"order_ref": ref, "station": "S1", "request_id": request_id, **extra}
    )


def bodies(agent: RunningAgent, kind: str) -> list[dict[str, Any]]:
    """What the cloud received of `kind`, plus what still waits in the outbox (each event once)."""
    assert agent.agent is not None
    store = agent.agent.store
    query = "SELECT event_id, body FROM outbox WHERE kind = ?"
    rows = agent.call_on_loop(lambda: store.query(query, (kind,)))
    found = {row["event_id"]: json.loads(row["body"]) for row in rows}
    found.update({event.event_id: json.loads(event.body) for event in agent.events(kind)})
    return list(found.values())


def ruleset(default_carrier: str, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": "default", "version": 1, "default": {"carrier": default_carrier}, "rules": rules or []}


def gs1(prefix: str, serial: int, digits: int) -> str:
    body = f"{prefix}{serial:0{digits}d}"
    return body + ean.calc_check_digit(body)


def test_each_parcel_prints_once_reprints_keep_its_number_and_close_counts_them(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    one = pack(agent, "P-0001", "p1")
    assert one.status_code == 200, one.text
    first = one.json()
    assert (first["parcel"], first["status"]) == (1, "sent")
    assert (
        first["tracking_number"] == first["job_id"].upper()[-20:]
    )  # no carrier account: the job's reference

    # Same request id: same job (as it is now: sent, or printed once confirmed).
    assert {**pack(agent, "P-0001", "p1").json(), "status": "sent"} == first
    rescan = pack(agent, "P-0001", "p1-again")
    assert rescan.json() == {**first, "status": "already_packed"}
    reused = pack(agent, "P-0001", "p1", parcel=2)
    assert (reused.status_code, error_of(reused)["code"]) == (409, "request_id_reused")

    put_parcel(agent, scale, 2100)
    two = pack(agent, "P-0001", "p2", parcel=2, dimensions_mm=[300, 200, 100]).json()
    assert (two["parcel"], two["status"], two["weight_g"]) == (2, "sent", 2100)
    assert two["job_id"] != first["job_id"]
    assert pack(agent, "P-0001", "p2-again", parcel=2).json()["status"] == "already_packed"
    labels = printer.wait_for_labels(2)
    assert len(printer.labels()) == 2
    assert two["tracking_number"] in "\n".join(labels[1]["fields"])

    printed = {body["parcel"]: body for body in bodies(agent, "label_printed")}
    assert set(printed) == {1, 2}
    assert printed[2]["tracking_number"] == two["tracking_number"]
    assert printed[2]["dimensions_mm"] == [300, 200, 100]
    assert (printed[1]["document"], printed[1]["dimensions_mm"], printed[1]["sscc"]) == (
        "shipping_label",
        None,
        "",
    )

    assert agent.http is not None
    reprint = agent.http.post(f"/api/v1/jobs/{two['job_id']}/reprint", json={"reason": "label torn"}).json()
    assert (reprint["parcel"], reprint["tracking_number"]) == (2, two["tracking_number"])
    assert printer.wait_for_labels(3)[2]["data"] == labels[1]["data"]
    order = agent.http.get("/api/v1/orders/P-0001").json()
    assert [(p["parcel"], p["job_id"]) for p in order["parcels"]] == [
        (1, first["job_id"]),
        (2, two["job_id"]),
    ]

    closed = agent.http.post("/api/v1/orders/P-0001/close", json={"reason": "third carton not needed"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["parcels"] == 2
    assert bodies(agent, "order_closed") == [
        {"parcels": 2, "reason": "third carton not needed", "packer": None}  # no one signed in at S1
    ]
    unknown = agent.http.post("/api/v1/orders/NOPE-1/close")
    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "order_not_found")
    nothing = agent.http.post("/api/v1/orders/P-0002/close", json={})
    assert (nothing.status_code, error_of(nothing)["code"]) == (409, "nothing_labelled")
    bad = agent.http.post("/api/v1/orders/P-0001/close", json={"reason": 7})
    assert bad.status_code == 422
    assert len(bodies(agent, "order_closed")) == 1


def test_range_numbers_print_in_order_offline_until_the_lease_runs_out_then_labels_wait_for_more(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    fmt = {"scheme": "gs1_mod10", "prefix": "7", "digits": 9}
    lease = {
        "id": 1,
        "agent_id": "agent-test",
        "carrier": "ACME",
        "kind": "range",
        "first": 1000,
        "last": 1002,
        "used_through": None,
        "retired": False,
        "format": fmt,
    }
    cloud.publish(
        "carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}, "low_water": 1}
    )
    cloud.publish("number_lease", "1", lease)
    cloud.publish("ruleset", "default", ruleset("ACME"))
    agent.wait_synced()
    cloud.push_failures = [SyncError("the cloud is down")] * 100_000  # offline: nothing reaches it

    numbers = []
    for n in range(3):
        put_parcel(agent, scale, 1500 + 100 * n)
        answer = pack(agent, f"P-000{n + 1}", f"r{n}").json()
        assert (answer["status"], answer["carrier"]) == ("sent", "ACME"), answer
        numbers.append(answer["tracking_number"])
    assert numbers == [gs1("7", serial, 9) for serial in (1000, 1001, 1002)]
    labels = printer.wait_for_labels(3)
    for number, label in zip(numbers, labels, strict=True):
        assert number in "\n".join(label["fields"])
    assert agent.status()["tracking_numbers"] == {"ACME": 0}

    # Out of numbers: the parcel is packed (its weight spent) and its label waits for a number.
    put_parcel(agent, scale, 1900)
    held = pack(agent, "P-0004", "r3")
    assert held.status_code == 202, held.text
    fourth = held.json()
    assert (fourth["status"], fourth["weight_g"], fourth["tracking_number"]) == ("held", 1900, "")
    assert fourth["message"] == (
        "no ACME tracking number left at this agent: this label prints by itself as soon as the cloud "
        "sends more numbers (check the agent's connection); put the parcel aside with its order"
    )
    assert pack(agent, "P-0004", "r3").json() == fourth  # the same request: the same job
    again = pack(agent, "P-0004", "r3-again").json()  # a new scan of the parcel: its job
    assert (again["status"], again["job_id"]) == ("already_packed", fourth["job_id"])
    assert agent.http is not None
    job = agent.http.get(f"/api/v1/jobs/{fourth['job_id']}").json()
    assert (job["status"], job["label_bytes"]) == ("held", 0)
    put_parcel(agent, scale, 2000)
    fifth = pack(agent, "P-0005", "r5").json()
    assert (fifth["status"], fifth["weight_g"]) == ("held", 2000)
    assert len(printer.labels()) == 3
    assert len(bodies(agent, "exception_raised")) == 1  # once, not per scan
    assert [b["awaits_number"] for b in bodies(agent, "label_held")] == ["ACME", "ACME"]

    # A lease of one number: the oldest waiting label prints by itself with it, the other waits on.
    cloud.publish("number_lease", "2", {**lease, "id": 2, "first": 5000, "last": 5000})
    agent.wait_synced()
    printer.wait_for_labels(4)
    assert gs1("7", 5000, 9) in "\n".join(printer.labels()[3]["fields"])
    assert "P-0004" in "\n".join(printer.labels()[3]["fields"])

    def status_of(answer: dict[str, Any]) -> Any:
        assert agent.http is not None
        return agent.http.get(f"/api/v1/jobs/{answer['job_id']}").json()

    wait_until(lambda: status_of(fourth)["status"] == "printed", what="the waiting label to print")
    assert status_of(fourth)["tracking_number"] == gs1("7", 5000, 9)
    assert (status_of(fifth)["status"], status_of(fifth)["label_bytes"]) == ("held", 0)
    assert len(printer.labels()) == 4

    cloud.publish("number_lease", "3", {**lease, "id": 3, "first": 6000, "last": 6009})
    agent.wait_synced()
    printer.wait_for_labels(5)
    wait_until(lambda: status_of(fifth)["status"] == "printed", what="the second waiting label to print")
    assert status_of(fifth)["tracking_number"] == gs1("7", 6000, 9)
    assert "P-0005" in "\n".join(printer.labels()[4]["fields"])

    cloud.push_failures = []
    wait_until(lambda: agent.status()["outbox_depth"] == 0, timeout=20, what="the outbox to drain")
    used = [json.loads(event.body) for event in agent.events("number_used")]
    assert sorted((u["lease_id"], u["serial"]) for u in used) == [
        (1, 1000),
        (1, 1001),
        (1, 1002),
        (2, 5000),
        (3, 6000),
    ]
    printed = {body["order_ref"]: body["tracking_number"] for body in _printed_bodies(agent)}
    assert (printed["P-0004"], printed["P-0005"]) == (gs1("7", 5000, 9), gs1("7", 6000, 9))
    assert agent.events("number_voided") == []
    assert len(printer.labels()) == 5  # each label once


def _printed_bodies(agent: RunningAgent) -> list[dict[str, Any]]:
    """The `label_printed` bodies the cloud received, with the order each is for."""
    events = agent.events("label_printed")
    return [{**json.loads(event.body), "order_ref": event.order_ref} for event in events]


def test_oms_numbers_come_from_the_order_and_rules_see_the_parcels_dimensions(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    cloud.publish("carrier", "BIGCO", {"code": "BIGCO", "name": "Big", "tracking": {"kind": "oms"}})
    rules = [{"name": "long parcels", "when": "length_mm > 500", "then": {"carrier": "BIGCO"}}]
    cloud.publish("ruleset", "default", ruleset("SMALLCO", rules))
    parcels = [{"dimensions_mm": [600, 400, 300], "tracking_number": "1z999aa10123456784"}, {}]
    cloud.publish("order", "O-0001", order_body("O-0001", parcels=parcels))
    agent.wait_synced()

    one = pack(agent, "O-0001", "o1").json()  # the order's dimensions for parcel 1: 600 mm long
    assert (one["carrier"], one["tracking_number"]) == ("BIGCO", "1Z999AA10123456784")
    assert "1Z999AA10123456784" in "\n".join(printer.wait_for_labels(1)[0]["fields"])

    put_parcel(agent, scale, 2500)
    missing = pack(agent, "O-0001", "o2", parcel=2, dimensions_mm=[700, 100, 100])
    assert (missing.status_code, error_of(missing)["code"]) == (409, "tracking_number_missing")
    assert "has not sent parcel 2's BIGCO label" in error_of(missing)["message"]
    small = pack(agent, "O-0001", "o2b", parcel=2, dimensions_mm=[100, 100, 100]).json()
    assert (small["status"], small["carrier"], small["weight_g"]) == ("sent", "SMALLCO", 2500)
    assert len(printer.wait_for_labels(2)) == 2


def test_hostile_pack_bodies_are_refused_by_field_and_change_nothing(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    hostile: list[Any] = [
        {"parcel": 0},
        {"parcel": 100},
        {"parcel": "2"},
        {"parcel": 10**20},
        {"parcel": 2.0},
        {"parcel": True},
        {"parcel": None},
        {"dimensions_mm": [-1, 10, 10]},
        {"dimensions_mm": [0, 10, 10]},
        {"dimensions_mm": [10, 10, 10**9]},
        {"dimensions_mm": ["10", "10", "10"]},
        {"dimensions_mm": [10, 10]},
        {"dimensions_mm": [10, 10, 10, 10]},
        {"dimensions_mm": "300x200x100"},
        {"dimensions_mm": [1.5, 10, 10]},
    ]
    for extra in hostile:
        response = pack(agent, "P-0003", "hostile", **extra)
        assert response.status_code == 422, (extra, response.text)
        error = error_of(response)
        assert error["code"] == "invalid_input", extra
        assert next(iter(extra)) in error["message"], (extra, error)
    assert agent.http is not None
    assert agent.http.get("/api/v1/orders/P-0003").json()["parcels"] == []
    assert printer.labels() == []
    assert bodies(agent, "label_printed") == []


def test_each_document_is_its_own_job_and_a_faulted_printer_holds_only_its_document(
    data_dir: Path, printer: MockPrinter, scale: MockScale
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the slip printer refuses connections
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    assert scale.pty_path
    station = station_body("S1", printer, scale.pty_path)
    slip = {**station["printers"][0], "id": "S1-slip", "role": "slip", "port": closed_port}
    cloud.publish("station", "S1", {**station, "printers": [*station["printers"], slip]})
    cloud.publish("order", "D-0001", order_body("D-0001"))
    documents = [{"kind": "packing_slip", "template": "shipping-4x6", "printer_role": "slip"}]
    cloud.publish(
        "ruleset", "default", {**ruleset("ACME"), "default": {"carrier": "ACME", "documents": documents}}
    )
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        answer = pack(running, "D-0001", "d1").json()
        assert (answer["status"], answer["printer"]) == ("sent", "S1-label")
        assert {**pack(running, "D-0001", "d1").json(), "status": "sent"} == answer  # the same job
        assert pack(running, "D-0001", "d1-again").json()["status"] == "already_packed"
        assert running.job(answer["job_id"])["status"] == "printed"  # once the printer confirmed it

        assert running.agent is not None
        store = running.agent.store
        jobs = running.call_on_loop(
            lambda: store.query(
                "SELECT request_id, document, parcel, status, printer, tracking_number FROM jobs"
            )
        )
        by_document = {job["document"]: job for job in jobs}
        assert len(jobs) == 2
        assert by_document["shipping_label"]["status"] == "printed"
        slip_job = by_document["packing_slip"]
        assert (slip_job["request_id"], slip_job["status"], slip_job["printer"]) == (
            "d1:packing_slip",
            "held",
            "S1-slip",
        )
        assert (slip_job["parcel"], slip_job["tracking_number"]) == (1, answer["tracking_number"])
        assert len(printer.wait_for_labels(1)) == 1
        # Held (and held again at each recheck of the refusing printer): only the slip.
        held = {(body["document"], body["parcel"]) for body in bodies(running, "label_held")}
        assert held == {("packing_slip", 1)}
    finally:
        running.stop()


def test_a_reprint_of_a_job_whose_number_was_voided_labels_the_parcel_with_the_next_number(
    data_dir: Path, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    fmt = {"scheme": "gs1_mod10", "prefix": "7", "digits": 9}
    lease = {"id": 1, "agent_id": "agent-test", "carrier": "ACME", "kind": "range", "first": 10, "last": 19}
    cloud.publish("carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}})
    cloud.publish("number_lease", "1", {**lease, "used_through": None, "retired": False, "format": fmt})
    cloud.publish("ruleset", "default", ruleset("ACME"))
    first = RunningAgent(data_dir, cloud).start()
    try:
        first.wait_synced()
        wait_until(lambda: scale_settled(first), timeout=10, what="the scale reader to settle")
        packed = pack(first, "P-0001", "v1", parcel=3).json()
        assert (packed["status"], packed["tracking_number"]) == ("sent", gs1("7", 10, 9))
    finally:
        first.stop()
    # The state a crash between committing `sending` and `printed` leaves.
    store = Store.open(data_dir)
    try:
        store.conn.execute("UPDATE jobs SET status = 'sending' WHERE job_id = ?", (packed["job_id"],))
    finally:
        store.close()

    second = RunningAgent(data_dir, cloud).start()
    try:
        assert second.http is not None
        assert second.http.get(f"/api/v1/jobs/{packed['job_id']}").json()["status"] == "unknown"
        voided = bodies(second, "number_voided")
        assert [(v["serial"], v["job_id"], v["reason"]) for v in voided] == [
            (10, packed["job_id"], "job_unknown")
        ]

        reprint = second.http.post(
            f"/api/v1/jobs/{packed['job_id']}/reprint", json={"reason": "none came out"}
        )
        assert reprint.status_code == 200, reprint.text
        again = reprint.json()
        assert (again["parcel"], again["tracking_number"]) == (3, gs1("7", 11, 9))
        label = printer.wait_for_labels(2)[1]
        assert gs1("7", 11, 9) in "\n".join(label["fields"])
        assert gs1("7", 10, 9) not in "\n".join(label["fields"])
        assert second.http.get(f"/api/v1/jobs/{again['job_id']}").json()["reprint_of"] == packed["job_id"]
        used = sorted((u["serial"], u["job_id"]) for u in bodies(second, "number_used"))
        assert used == sorted([(10, packed["job_id"]), (11, again["job_id"])])
        numbered = [*bodies(second, "number_used"), *bodies(second, "number_voided")]
        assert {(body["parcel"], body["carrier"]) for body in numbered} == {(3, "ACME")}
        # A reprint of the new label (its number is not voided) is the same label, same number.
        same = second.http.post(f"/api/v1/jobs/{again['job_id']}/reprint", json={"reason": "torn"}).json()
        assert same["tracking_number"] == gs1("7", 11, 9)
        assert printer.wait_for_labels(3)[2]["data"] == label["data"]
    finally:
        second.stop()


def test_a_closed_order_stays_closed_across_a_restart_and_a_second_close_answers_the_first(
    data_dir: Path, cloud: MemoryTransport, agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    assert agent.http is not None
    first = pack(agent, "P-0003", "c1").json()
    assert (first["parcel"], first["status"]) == (1, "sent")
    closed = agent.http.post("/api/v1/orders/P-0003/close", json={"reason": "one carton short"})
    assert closed.status_code == 200, closed.text
    again = agent.http.post("/api/v1/orders/P-0003/close", json={"reason": "a second reason"})
    assert again.json() == closed.json()  # the first close, not a second one
    assert again.json()["reason"] == "one carton short"
    assert bodies(agent, "order_closed") == [{"parcels": 1, "reason": "one carton short", "packer": None}]
    assert agent.http.get("/api/v1/orders/P-0003").json()["closed"] is True
    assert agent.http.get("/api/v1/orders/P-0004").json()["closed"] is False

    put_parcel(agent, scale, 2100)
    refused = pack(agent, "P-0003", "c2", parcel=2)
    assert (refused.status_code, error_of(refused)["code"]) == (409, "order_closed"), refused.text
    assert "closed with 1 parcel(s)" in error_of(refused)["message"]
    assert pack(agent, "P-0003", "c1-again").json() == {**first, "status": "already_packed"}
    # The weight was not spent on the refused parcel: the next order's pack takes it.
    assert agent.status()["stations"][0]["scale"]["parcel_ready"] is True
    other = pack(agent, "P-0004", "c3").json()
    assert (other["status"], other["weight_g"]) == ("sent", 2100)
    assert len(printer.wait_for_labels(2)) == 2
    agent.stop()

    restarted = RunningAgent(data_dir, cloud).start()
    try:
        restarted.wait_synced()
        wait_until(lambda: scale_settled(restarted), timeout=10, what="the scale reader to settle")
        put_parcel(restarted, scale, 3300)
        after = pack(restarted, "P-0003", "c4", parcel=2)
        assert (after.status_code, error_of(after)["code"]) == (409, "order_closed"), after.text
        assert restarted.http is not None
        assert restarted.http.post("/api/v1/orders/P-0003/close").json() == closed.json()
        assert len(bodies(restarted, "order_closed")) == 1
    finally:
        restarted.stop()
    assert len(printer.labels()) == 2


def test_a_weight_serves_one_parcel_of_an_order_not_the_next_one(
    agent: RunningAgent, printer: MockPrinter, scale: MockScale
) -> None:
    one = pack(agent, "P-0005", "w1").json()
    assert (one["parcel"], one["status"], one["weight_g"]) == (1, "sent", 1234)
    assert agent.status()["stations"][0]["scale"]["last_used"] == {
        "grams": 1234,
        "order_ref": "P-0005",
        "parcel": 1,
    }
    # Parcel 2 while parcel 1 still lies on the scale: it waits, then says the weight was used.
    stale = pack(agent, "P-0005", "w2", parcel=2)
    assert error_of(stale)["code"] == "scale_weight_used", stale.text
    assert "parcel 2 of order P-0005 on" in error_of(stale)["message"]
    assert "already used for parcel 1 of order P-0005" in error_of(stale)["message"]
    assert len(printer.wait_for_labels(1)) == 1
    assert pack(agent, "P-0005", "w1-again").json() == {**one, "status": "already_packed"}

    put_parcel(agent, scale, 2222)
    two = pack(agent, "P-0005", "w3", parcel=2).json()
    assert (two["parcel"], two["status"], two["weight_g"]) == (2, "sent", 2222)
    assert len(printer.wait_for_labels(2)) == 2
    assert agent.status()["stations"][0]["scale"]["last_used"]["parcel"] == 2
