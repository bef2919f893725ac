"""Void and relabel, and the dock's handover scan, through the agent's real HTTP API.

A voided parcel's label keeps its job (status `voided`), its leased number is voided and never
printed again, and packing the parcel again prints a new label with the next number. A dock scan
hands a labelled parcel over once. Expected numbers are computed with python-stdnum.
"""

from __future__ import annotations

from typing import Any

from dockside.errors import SyncError
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import RunningAgent, error_of, put_parcel
from tests.edge_agent.packing.test_parcels import agent, bodies, cloud, gs1, pack, printer, ruleset

__all__ = ["agent", "cloud", "printer"]  # the fixtures of test_parcels, used here

LEASE = {
    "id": 1,
    "agent_id": "agent-test",
    "carrier": "ACME",
    "kind": "range",
    "first": 1000,
    "last": 1009,
    "used_through": None,
    "retired": False,
    "format": {"scheme": "gs1_mod10", "prefix": "7", "digits": 9},
}


def _with_numbers(agent: RunningAgent, cloud: MemoryTransport) -> None:
    cloud.publish(
        "carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}, "low_water": 1}
    )
    cloud.publish("number_lease", "1", LEASE)
    cloud.publish("ruleset", "default", ruleset("ACME"))
    agent.wait_synced()


def _post(agent: RunningAgent, path: str, body: Any) -> Any:
    assert agent.http is not None
    if isinstance(body, bytes):
        return agent.http.post(path, content=body, headers={"Content-Type": "application/json"})
    return agent.http.post(path, json=body)


def test_void_then_relabel_prints_a_new_number_and_never_the_voided_one(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    _with_numbers(agent, cloud)
    cloud.push_failures = [SyncError("offline")] * 100_000
    first = pack(agent, "P-0001", "a1").json()
    assert first["tracking_number"] == gs1("7", 1000, 9)
    printer.wait_for_labels(1)

    voided = _post(agent, "/api/v1/orders/P-0001/parcels/1/void", {"reason": "  address changed "})
    assert voided.status_code == 200, voided.text
    assert voided.json() == {
        "order_ref": "P-0001",
        "parcel": 1,
        "status": "voided",
        "job_id": first["job_id"],
        "tracking_number": gs1("7", 1000, 9),
        "reason": "address changed",
    }
    assert bodies(agent, "parcel_voided") == [
        {"parcel": 1, "tracking_number": gs1("7", 1000, 9), "reason": "address changed", "packer": None}
    ]
    number_voided = bodies(agent, "number_voided")
    assert [(b["serial"], b["reason"], b["parcel"]) for b in number_voided] == [(1000, "address changed", 1)]
    assert agent.http is not None
    assert agent.http.get(f"/api/v1/jobs/{first['job_id']}").json()["status"] == "voided"

    # Twice: refused, nothing more recorded. A reprint of the voided job: refused.
    again = _post(agent, "/api/v1/orders/P-0001/parcels/1/void", {"reason": "again"})
    assert (again.status_code, error_of(again)["code"]) == (409, "already_voided")
    reprint = _post(agent, f"/api/v1/jobs/{first['job_id']}/reprint", {"reason": "torn"})
    assert (reprint.status_code, error_of(reprint)["code"]) == (409, "job_voided")

    # Relabel: the same parcel packs again, with the next number.
    put_parcel(agent, scale, 1700)
    relabel = pack(agent, "P-0001", "a2").json()
    assert (relabel["status"], relabel["parcel"]) == ("sent", 1)
    assert relabel["tracking_number"] == gs1("7", 1001, 9)
    assert relabel["job_id"] != first["job_id"]
    assert pack(agent, "P-0001", "a3").json()["status"] == "already_packed"
    labels = printer.wait_for_labels(2)
    assert gs1("7", 1000, 9) not in "\n".join(labels[1]["fields"])
    assert len(bodies(agent, "parcel_voided")) == 1
    order = agent.http.get("/api/v1/orders/P-0001").json()
    assert [p["job_id"] for p in order["parcels"]] == [relabel["job_id"]]


def test_void_refusals_and_hostile_bodies_change_nothing(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    _with_numbers(agent, cloud)
    assert pack(agent, "P-0001", "h1").status_code == 200
    for path, body, status, code in (
        ("/api/v1/orders/P-0001/parcels/1/void", {}, 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/1/void", {"reason": ""}, 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/1/void", {"reason": "   "}, 422, "reason_required"),
        ("/api/v1/orders/P-0001/parcels/1/void", {"reason": "x" * 501}, 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/1/void", {"reason": 5}, 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/1/void", {"reason": "r", "extra": 1}, 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/1/void", b"{not json", 400, "invalid_json"),
        ("/api/v1/orders/P-0001/parcels/1/void", b'["reason"]', 422, "invalid_input"),
        ("/api/v1/orders/P-0001/parcels/0/void", {"reason": "r"}, 404, "parcel_not_found"),
        ("/api/v1/orders/P-0001/parcels/-1/void", {"reason": "r"}, 404, "parcel_not_found"),
        ("/api/v1/orders/P-0001/parcels/１/void", {"reason": "r"}, 404, "parcel_not_found"),
        ("/api/v1/orders/P-0001/parcels/99999999999999999999/void", {"reason": "r"}, 404, "parcel_not_found"),
        ("/api/v1/orders/P-0001/parcels/2/void", {"reason": "r"}, 409, "parcel_not_labelled"),
        ("/api/v1/orders/NOPE/parcels/1/void", {"reason": "r"}, 404, "order_not_found"),
        ("/api/v1/orders/" + "A" * 65 + "/parcels/1/void", {"reason": "r"}, 404, "order_not_found"),
    ):
        answer = _post(agent, path, body)
        assert answer.status_code == status, (path, body, answer.text)
        assert error_of(answer)["code"] == code, (path, body, answer.text)
        assert error_of(answer)["message"]
    assert bodies(agent, "parcel_voided") == []
    assert bodies(agent, "number_voided") == []


def test_a_dock_scan_hands_a_parcel_over_once_and_an_unknown_number_is_a_clear_404(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    _with_numbers(agent, cloud)
    one = pack(agent, "P-0001", "d1").json()
    put_parcel(agent, scale, 1600)
    two = pack(agent, "P-0002", "d2").json()
    number = one["tracking_number"]

    def scan(text: str, request_id: str) -> Any:
        return _post(agent, "/api/v1/handover", {"scan": text, "station": "S1", "request_id": request_id})

    first = scan(f" {number.lower()} ", "s1")
    assert first.status_code == 200, first.text
    answer = first.json()
    assert {k: answer[k] for k in ("status", "order_ref", "parcel", "tracking_number", "carrier")} == {
        "status": "handed_over",
        "order_ref": "P-0001",
        "parcel": 1,
        "tracking_number": number,
        "carrier": "ACME",
    }
    assert scan(number, "s1").json() == answer  # the same request: the same answer
    assert scan(number, "s2").json()["status"] == "already_handed_over"
    assert scan(two["tracking_number"], "s3").json()["status"] == "handed_over"
    assert sorted(bodies(agent, "parcel_handed_over"), key=lambda b: b["tracking_number"]) == sorted(
        [
            {"parcel": 1, "tracking_number": number, "carrier": "ACME"},
            {"parcel": 1, "tracking_number": two["tracking_number"], "carrier": "ACME"},
        ],
        key=lambda b: b["tracking_number"],
    )
    # A handed-over parcel is on the truck: it cannot be voided at the agent.
    refused = _post(agent, "/api/v1/orders/P-0001/parcels/1/void", {"reason": "late change"})
    assert (refused.status_code, error_of(refused)["code"]) == (409, "parcel_handed_over")

    unknown = scan("7000000000000", "s4")
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "parcel_not_found"
    assert "no parcel with the number 7000000000000" in error_of(unknown)["message"]
    for body, status in (
        ({"scan": "", "station": "S1", "request_id": "x"}, 422),
        ({"scan": "ABC-123", "station": "S1", "request_id": "x"}, 422),
        ({"scan": "^XA^XZ", "station": "S1", "request_id": "x"}, 422),
        ({"scan": "A" * 65, "station": "S1", "request_id": "x"}, 422),
        ({"scan": "A" * 41, "station": "S1", "request_id": "x"}, 422),
        ({"scan": number, "station": "NOPE", "request_id": "x"}, 404),
        ({"scan": number, "station": "S1"}, 422),
        ({"scan": 123, "station": "S1", "request_id": "x"}, 422),
        ({"scan": number, "station": "S1", "request_id": "x", "more": 1}, 422),
    ):
        answer = _post(agent, "/api/v1/handover", body)
        assert answer.status_code == status, (body, answer.text)
        assert error_of(answer)["message"]
    bad = _post(agent, "/api/v1/handover", {"scan": "ABC-123", "station": "S1", "request_id": "y"})
    assert error_of(bad)["code"] == "invalid_scan"
    assert len(bodies(agent, "parcel_handed_over")) == 2


def test_a_voided_label_scanned_at_the_dock_is_refused_and_an_sscc_scan_finds_its_parcel(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    cloud.publish(
        "carrier", "PAL", {"code": "PAL", "name": "Pallets", "tracking": {"kind": "sscc"}, "low_water": 1}
    )
    sscc_lease = {
        **LEASE,
        "id": 3,
        "carrier": "PAL",
        "kind": "sscc",
        "first": 1,
        "last": 9,
        "format": {"company_prefix": "0614141", "extension": 0},
    }
    cloud.publish("number_lease", "3", sscc_lease)
    cloud.publish("ruleset", "default", ruleset("PAL"))
    agent.wait_synced()
    first = pack(agent, "P-0001", "v1").json()
    sscc = first["tracking_number"]
    assert len(sscc) == 18
    assert _post(agent, "/api/v1/orders/P-0001/parcels/1/void", {"reason": "wrong carton"}).status_code == 200
    voided = _post(agent, "/api/v1/handover", {"scan": sscc, "station": "S1", "request_id": "k1"})
    assert (voided.status_code, error_of(voided)["code"]) == (409, "label_voided")
    put_parcel(agent, scale, 1800)
    relabel = pack(agent, "P-0001", "v2").json()
    assert relabel["tracking_number"] != sscc
    # As a GS1-128 scanner sends it: symbology identifier and AI (00).
    handed = _post(
        agent,
        "/api/v1/handover",
        {"scan": "]C100" + relabel["tracking_number"], "station": "S1", "request_id": "k2"},
    )
    assert handed.status_code == 200, handed.text
    assert handed.json()["tracking_number"] == relabel["tracking_number"]
    assert bodies(agent, "parcel_handed_over") == [
        {"parcel": 1, "tracking_number": relabel["tracking_number"], "carrier": "PAL"}
    ]
