"""A carton label with its own SSCC (the ruleset's carton_label names an sscc carrier account).

SSCCs are checked with python-stdnum's GS1 check digit and GS1's published company prefix
example, not with the agent's code.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from stdnum import ean

from dockside.errors import InputError
from dockside.rules import compile_ruleset, decide
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import RunningAgent, put_parcel
from tests.edge_agent.packing.test_parcels import agent, bodies, cloud, gs1, pack, printer
from tests.edge_agent.waiting import wait_until

__all__ = ["agent", "cloud", "printer"]  # the fixtures of test_parcels, used here

RANGE_LEASE = {
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
SSCC_LEASE = {
    **RANGE_LEASE,
    "id": 2,
    "carrier": "PAL",
    "kind": "sscc",
    "first": 1,
    "last": 1,
    "format": {"company_prefix": "0614141", "extension": 3},
}


def _ruleset(carton: dict[str, Any]) -> dict[str, Any]:
    documents = [{"kind": "carton_label", "template": "shipping-4x6", "printer_role": "label", **carton}]
    return {
        "name": "default",
        "version": 1,
        "default": {"carrier": "ACME", "documents": documents},
        "rules": [],
    }


def _publish(cloud: MemoryTransport, carton: dict[str, Any]) -> None:
    cloud.publish("carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}})
    cloud.publish("carrier", "PAL", {"code": "PAL", "name": "Pallets", "tracking": {"kind": "sscc"}})
    cloud.publish("number_lease", "1", RANGE_LEASE)
    cloud.publish("number_lease", "2", SSCC_LEASE)
    cloud.publish("ruleset", "default", _ruleset(carton))


def _jobs(agent: RunningAgent) -> dict[str, dict[str, Any]]:
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(
        lambda: store.query(
            "SELECT document, tracking_number, status, json_extract(decision, '$.sscc') AS sscc, order_ref "
            "FROM jobs ORDER BY created_at_ms"
        )
    )
    return {f"{row['order_ref']}:{row['document']}": dict(row) for row in rows}


def test_a_carton_label_takes_its_own_sscc_and_a_dock_scan_of_it_finds_the_parcel(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, scale: MockScale
) -> None:
    _publish(cloud, {"carrier": "PAL"})
    agent.wait_synced()
    label = pack(agent, "P-0001", "c1").json()
    assert label["tracking_number"] == gs1("7", 1000, 9)
    printer.wait_for_labels(2)
    wait_until(
        lambda: _jobs(agent)["P-0001:carton_label"]["status"] == "printed", what="the carton label confirmed"
    )
    jobs = _jobs(agent)
    carton = jobs["P-0001:carton_label"]
    expected_sscc = "3" + "0614141" + "000000001"
    expected_sscc += ean.calc_check_digit(expected_sscc)
    assert (carton["sscc"], carton["tracking_number"], carton["status"]) == (
        expected_sscc,
        label["tracking_number"],
        "printed",
    )
    used = sorted((body["carrier"], body["tracking_number"]) for body in bodies(agent, "number_used"))
    assert used == [("ACME", gs1("7", 1000, 9)), ("PAL", expected_sscc)]
    assert [
        body["sscc"] for body in bodies(agent, "label_printed") if body["document"] == "carton_label"
    ] == [expected_sscc]
    assert agent.http is not None
    handed = agent.http.post(
        "/api/v1/handover", json={"scan": f"(00){expected_sscc}", "station": "S1", "request_id": "h1"}
    ).json()
    assert (handed["status"], handed["order_ref"], handed["parcel"]) == ("handed_over", "P-0001", 1)

    # The PAL lease is used up: the next carton label waits for an SSCC (the shipping label prints).
    put_parcel(agent, scale, 1500)
    second = pack(agent, "P-0002", "c2").json()
    assert second["status"] == "sent"
    printer.wait_for_labels(3)
    waiting = _jobs(agent)["P-0002:carton_label"]
    assert (waiting["status"], waiting["sscc"], waiting["tracking_number"]) == (
        "held",
        None,
        second["tracking_number"],
    )
    assert [body["code"] for body in bodies(agent, "exception_raised")] == ["tracking_numbers_exhausted"]
    held = [body for body in bodies(agent, "label_held") if body["document"] == "carton_label"]
    assert [body["awaits_number"] for body in held] == ["PAL"]
    assert "no PAL SSCC left at this agent: this carton label prints by itself" in held[0]["message"]
    assert len(printer.labels()) == 3

    # More SSCCs: the waiting carton label prints by itself with the next one.
    cloud.publish("number_lease", "3", {**SSCC_LEASE, "id": 3, "first": 2, "last": 5})
    agent.wait_synced()
    printer.wait_for_labels(4)
    next_sscc = "3" + "0614141" + "000000002"
    next_sscc += ean.calc_check_digit(next_sscc)
    wait_until(lambda: _jobs(agent)["P-0002:carton_label"]["status"] == "printed", what="the carton label")
    carton = _jobs(agent)["P-0002:carton_label"]
    assert (carton["sscc"], carton["tracking_number"]) == (next_sscc, second["tracking_number"])
    assert "P-0002" in "\n".join(printer.labels()[3]["fields"])
    wait_until(lambda: len(bodies(agent, "label_printed")) == 4, what="the carton's label_printed")
    assert sorted(
        body["sscc"] for body in bodies(agent, "label_printed") if body["document"] == "carton_label"
    ) == sorted([expected_sscc, next_sscc])
    assert len(printer.labels()) == 4


def test_a_carton_label_without_a_carrier_prints_without_an_sscc_and_says_so(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter, caplog: pytest.LogCaptureFixture
) -> None:
    _publish(cloud, {})
    agent.wait_synced()
    with caplog.at_level(logging.WARNING, logger="edge_agent.packing.pack"):
        assert pack(agent, "P-0001", "n1").json()["status"] == "sent"
        printer.wait_for_labels(2)
    assert not _jobs(agent)["P-0001:carton_label"]["sscc"]  # none in the job's decision
    assert "prints without an SSCC" in caplog.text
    assert [body["carrier"] for body in bodies(agent, "number_used")] == ["ACME"]


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (
            {"kind": "packing_slip", "template": "slip", "carrier": "PAL"},
            "carrier is only for a carton_label",
        ),
        ({"kind": "carton_label", "template": "c", "carrier": "P" * 33}, "1 to 32 characters"),
        ({"kind": "carton_label", "template": "c", "carrier": ""}, "1 to 32 characters"),
        ({"kind": "carton_label", "template": "c", "carrier": 7}, "1 to 32 characters"),
        ({"kind": "carton_label", "template": "c", "carrier": ["PAL"]}, "1 to 32 characters"),
        ({"kind": "carton_label", "template": "c", "sscc_from": "PAL"}, "unknown fields"),
    ],
)
def test_a_document_carrier_is_checked_when_the_ruleset_compiles(document: dict[str, Any], says: str) -> None:
    ruleset = {"default": {"carrier": "ACME", "documents": [document]}, "rules": []}
    with pytest.raises(InputError, match=says):
        compile_ruleset(ruleset)


def test_a_carton_label_carrier_is_decided_and_written_back() -> None:
    ruleset = _ruleset({"carrier": "PAL"})
    decision = decide({"order_ref": "X"}, 1000, ruleset)
    (carton,) = decision.documents
    assert carton.carrier == "PAL"
    assert carton.to_json() == ruleset["default"]["documents"][0]
    # Without a carrier the written document stays as it was (no empty carrier field).
    plain = decide({"order_ref": "X"}, 1000, _ruleset({})).documents[0]
    assert "carrier" not in plain.to_json()
