"""A wave's labels take tracking numbers as scans do, print the OMS's label, and their documents.

Expected numbers are computed with python-stdnum (GS1 mod 10), not the agent's code.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from stdnum import ean

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter
from tests.edge_agent.agent_harness import RunningAgent, order_body
from tests.edge_agent.packing.test_waves import _print, _wave, agent, cloud, printer

__all__ = ["agent", "cloud", "printer"]  # the fixtures of test_waves, used here

FMT = {"scheme": "gs1_mod10", "prefix": "7", "digits": 9}
LEASE = {
    "id": 1,
    "agent_id": "agent-test",
    "carrier": "ACME",
    "kind": "range",
    "first": 1000,
    "last": 1002,
    "used_through": None,
    "retired": False,
    "format": FMT,
}
OMS_NUMBER = "1Z999AA10123456784"
OMS_ZPL = f"^XA^FO40,40^A0N,40,40^FDOMS LABEL {OMS_NUMBER}^FS^XZ"


def gs1(serial: int) -> str:
    body = f"7{serial:09d}"
    return body + ean.calc_check_digit(body)


def _bodies(agent: RunningAgent, kind: str) -> list[dict[str, Any]]:
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(
        lambda: store.query("SELECT event_id, body FROM outbox WHERE kind = ?", (kind,))
    )
    found = {row["event_id"]: json.loads(row["body"]) for row in rows}
    found.update({event.event_id: json.loads(event.body) for event in agent.events(kind)})
    return list(found.values())


def test_wave_labels_take_leased_numbers_print_documents_and_stop_when_numbers_run_out(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    cloud.publish(
        "carrier", "ACME", {"code": "ACME", "name": "Acme", "tracking": {"kind": "range"}, "low_water": 1}
    )
    cloud.publish("number_lease", "1", LEASE)
    documents = [{"kind": "packing_slip", "template": "shipping-4x6", "printer_role": "label"}]
    cloud.publish(
        "ruleset",
        "default",
        {
            "name": "default",
            "version": 1,
            "default": {"carrier": "ACME", "documents": documents},
            "rules": [],
        },
    )
    # W-0006's label comes from the OMS (as ZPL): it prints that label, with the OMS's number.
    oms_parcel = {
        "expected_weight_g": 900,
        "tracking_number": OMS_NUMBER,
        "label": {"format": "zpl", "data_base64": base64.b64encode(OMS_ZPL.encode()).decode()},
    }
    cloud.publish(
        "order",
        "W-0006",
        {**order_body("W-0006", expected_weight_g=1600, parcels=[oms_parcel]), "state": "released"},
    )
    refs = ["W-0006", "W-0001", "W-0002", "W-0003", "W-0004", "W-0005"]
    _wave(cloud, 31, refs)
    agent.wait_synced()

    report = _print(agent, 31, "run-1").json()
    assert report["printed"] == 4  # the OMS label and three leased numbers
    assert report["stopped"]["order_ref"] == "W-0004"
    assert report["stopped"]["code"] == "tracking_numbers_exhausted"
    assert "used every ACME tracking number" in report["stopped"]["message"]
    assert [job["order_ref"] for job in report["jobs"]] == refs[:4]

    labels = printer.wait_for_labels(8)  # four labels, each followed by its packing slip
    assert OMS_NUMBER in "\n".join(labels[0]["fields"])
    printed = {
        body["tracking_number"]: body
        for body in _bodies(agent, "label_printed")
        if body["document"] == "shipping_label"
    }
    assert set(printed) == {OMS_NUMBER, gs1(1000), gs1(1001), gs1(1002)}
    for body in printed.values():
        assert (body["parcel"], body["wave_id"]) == (1, 31)
    slips = [body for body in _bodies(agent, "label_printed") if body["document"] == "packing_slip"]
    assert sorted(body["tracking_number"] for body in slips) == sorted(printed)
    used = _bodies(agent, "number_used")
    assert sorted(body["serial"] for body in used) == [1000, 1001, 1002]
    for label, number in zip(labels[2::2], (gs1(1000), gs1(1001), gs1(1002)), strict=True):
        assert number in "\n".join(label["fields"])

    # New numbers: the next Print wave prints the orders it stopped before, never one twice.
    cloud.publish("number_lease", "2", {**LEASE, "id": 2, "first": 2000, "last": 2009})
    agent.wait_synced()
    again = _print(agent, 31, "run-2").json()
    assert again["stopped"] is None
    assert [job["order_ref"] for job in again["jobs"]] == ["W-0004", "W-0005"]
    assert sorted(body["serial"] for body in _bodies(agent, "number_used")) == [1000, 1001, 1002, 2000, 2001]
    assert len(printer.wait_for_labels(12)) == 12

    # A voided wave label: the order waits again, and the next Print wave relabels it anew.
    assert agent.http is not None
    voided = agent.http.post("/api/v1/orders/W-0001/parcels/1/void", json={"reason": "wrong address"})
    assert voided.status_code == 200, voided.text
    described = {entry["order_ref"]: entry for entry in agent.http.get("/api/v1/waves/31").json()["orders"]}
    assert described["W-0001"]["status"] == "waiting"
    assert described["W-0002"]["status"] == "printed"
    third = _print(agent, 31, "run-3").json()
    assert [job["order_ref"] for job in third["jobs"]] == ["W-0001"]
    relabelled = [body for body in _bodies(agent, "number_used") if body["serial"] == 2002]
    assert len(relabelled) == 1
    # The relabel prints alone: the parcel's packing slip printed once already.
    assert gs1(2002) in "\n".join(printer.wait_for_labels(13)[12]["fields"])
