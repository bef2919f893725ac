"""A template label whose tracking number comes from the OMS: when the order's parcel gets a new
number after it printed (a relabel at the cloud), a reprint prints the template with the new
number; with the number unchanged it reprints the same label."""

from __future__ import annotations

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter
from tests.edge_agent.agent_harness import RunningAgent, order_body
from tests.edge_agent.packing.test_cloud_voids import _post
from tests.edge_agent.packing.test_parcels import agent, cloud, pack, printer, ruleset

__all__ = ["agent", "cloud", "printer"]  # the fixtures of test_parcels, used here

OLD, NEW = "OMS0000000001", "OMS0000000002"


def test_a_reprint_after_the_oms_renumbered_the_parcel_prints_the_new_number(
    agent: RunningAgent, cloud: MemoryTransport, printer: MockPrinter
) -> None:
    cloud.publish("carrier", "OMSC", {"code": "OMSC", "name": "OMS carrier", "tracking": {"kind": "oms"}})
    cloud.publish("ruleset", "default", ruleset("OMSC"))
    cloud.publish("order", "P-0001", order_body("P-0001", parcels=[{"tracking_number": OLD}]))
    agent.wait_synced()
    first = pack(agent, "P-0001", "n1").json()
    assert first["tracking_number"] == OLD
    printer.wait_for_labels(1)

    same = _post(agent, f"/api/v1/jobs/{first['job_id']}/reprint", {"reason": "torn"}).json()
    assert same["tracking_number"] == OLD
    labels = printer.wait_for_labels(2)
    assert labels[1]["data"] == labels[0]["data"]

    cloud.publish("order", "P-0001", order_body("P-0001", parcels=[{"tracking_number": NEW}]))
    agent.wait_synced()
    new = _post(agent, f"/api/v1/jobs/{first['job_id']}/reprint", {"reason": "relabelled"}).json()
    assert (new["status"], new["tracking_number"]) == ("sent", NEW)
    labels = printer.wait_for_labels(3)
    assert NEW in labels[2]["data"]
    assert OLD not in labels[2]["data"]
