"""Parcels voided in the cloud, through the agent's real HTTP API and sync.

The order's `voided_parcels` names `{"parcel", "tracking_number"}`: when this agent's label of
that parcel carries exactly that number, its next pack voids it locally (the job `voided`, its
leased number `number_voided` "voided in the cloud", no `parcel_voided` back) and prints a new
label with the next number; a reprint of it is refused. Stale entries, the old `[n]` shape and
hostile entries void nothing.
"""

from __future__ import annotations

from typing import Any

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import RunningAgent, error_of, order_body, put_parcel
from tests.edge_agent.packing.test_parcels import agent, bodies, cloud, gs1, pack, printer
from tests.edge_agent.packing.test_void_handover import _post, _with_numbers

__all__ = ["agent", "cloud", "printer"]  # the fixtures of test_parcels, used here

HOSTILE: list[Any] = [
    1,
    "1",
    None,
    [1, "X"],
    {"parcel": True, "tracking_number": "X"},
    {"parcel": 0, "tracking_number": "X"},
    {"parcel": 100, "tracking_number": "X"},
    {"parcel": 1.0, "tracking_number": "X"},
    {"parcel": 1, "tracking_number": 7},
    {"parcel": 1, "tracking_number": ""},
    {"parcel": 1, "tracking_number": "9" * 41},
    {"parcel": 1},
]


def _void_in_cloud(cloud: MemoryTransport, ref: str, voided: Any) -> None:
    cloud.publish("order", ref, order_body(ref, voided_parcels=voided))


def test_a_cloud_void_of_the_printed_number_relabels_at_the_next_pack(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    _with_numbers(agent, cloud)
    first = pack(agent, "P-0001", "c1").json()
    old = gs1("7", 1000, 9)
    assert first["tracking_number"] == old
    printer.wait_for_labels(1)

    # Hostile entries and another number of the parcel: nothing is voided.
    _void_in_cloud(cloud, "P-0001", [*HOSTILE, {"parcel": 1, "tracking_number": "1Z999"}])
    agent.wait_synced()
    assert pack(agent, "P-0001", "c2").json()["status"] == "already_packed"

    _void_in_cloud(cloud, "P-0001", [*HOSTILE, {"parcel": 1, "tracking_number": f" {old.lower()} "}])
    agent.wait_synced()
    put_parcel(agent, scale, 1700)
    relabel = pack(agent, "P-0001", "c3").json()
    assert (relabel["status"], relabel["tracking_number"]) == ("sent", gs1("7", 1001, 9))
    assert agent.http is not None
    assert agent.http.get(f"/api/v1/jobs/{first['job_id']}").json()["status"] == "voided"
    assert bodies(agent, "parcel_voided") == []  # the cloud asked for it: not told back
    assert [(b["serial"], b["reason"]) for b in bodies(agent, "number_voided")] == [
        (1000, "voided in the cloud")
    ]
    reprint = _post(agent, f"/api/v1/jobs/{first['job_id']}/reprint", {"reason": "torn"})
    assert (reprint.status_code, error_of(reprint)["code"]) == (409, "job_voided")

    # The same (now stale) body never voids the new label.
    stale = pack(agent, "P-0001", "c4").json()
    assert (stale["status"], stale["job_id"]) == ("already_packed", relabel["job_id"])
    assert agent.job(relabel["job_id"])["status"] == "printed"
    assert len(bodies(agent, "number_voided")) == 1


def test_the_old_shape_voids_nothing_and_a_reprint_after_a_cloud_void_is_refused(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    _with_numbers(agent, cloud)
    first = pack(agent, "P-0002", "o1").json()
    printer.wait_for_labels(1)
    _void_in_cloud(cloud, "P-0002", [1])
    agent.wait_synced()
    again = pack(agent, "P-0002", "o2").json()
    assert (again["status"], again["tracking_number"]) == ("already_packed", first["tracking_number"])

    _void_in_cloud(cloud, "P-0002", [{"parcel": 1, "tracking_number": first["tracking_number"]}])
    agent.wait_synced()
    reprint = _post(agent, f"/api/v1/jobs/{first['job_id']}/reprint", {"reason": "torn"})
    assert (reprint.status_code, error_of(reprint)["code"]) == (409, "job_voided")
    assert bodies(agent, "parcel_voided") == []
    assert len(bodies(agent, "number_voided")) == 1
