"""A parcel the OMS relabelled after it printed (a new label and tracking number after a weight
check at the cloud): a reprint of its job prints the label the order has now, read back off the
printed graphic by pyzbar; a reprint with the order unchanged prints the same label again."""

from __future__ import annotations

from typing import Any

from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter
from tests.edge_agent.agent_harness import RunningAgent, order_body
from tests.edge_agent.packing.test_documents import (
    TRACKING,
    _b64,
    _decoded,
    _pdf_label,
    _zpl_graphics,
    agent,
    label_printer,
    slip_printer,
)

__all__ = ["agent", "label_printer", "slip_printer"]  # the fixtures of test_documents, used here

NEW_TRACKING = "1Z12345E0205271688"


def _reprint(agent: RunningAgent, job_id: str, request_id: str) -> Any:
    assert agent.http is not None
    answer = agent.http.post(
        f"/api/v1/jobs/{job_id}/reprint", json={"reason": "torn", "request_id": request_id}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _printed_number(label: dict[str, Any]) -> list[str]:
    (picture,) = _zpl_graphics(label["data"].encode("ascii"))
    return _decoded(picture)


def test_a_reprint_after_an_oms_relabel_prints_the_new_label(
    agent: RunningAgent, label_printer: MockPrinter, slip_printer: MockPrinter
) -> None:
    assert agent.http is not None
    packed = agent.http.post(
        "/api/v1/pack", json={"order_ref": "D-0001", "station": "S1", "request_id": "r1"}
    )
    first = packed.json()
    assert first["tracking_number"] == TRACKING
    label_printer.wait_for_labels(1)

    same = _reprint(agent, first["job_id"], "rp1")
    assert same["tracking_number"] == TRACKING
    labels = label_printer.wait_for_labels(2)
    assert labels[1]["data"] == labels[0]["data"]

    assert NEW_TRACKING != TRACKING
    cloud = agent.cloud
    assert isinstance(cloud, MemoryTransport)
    parcels = [
        {
            "tracking_number": NEW_TRACKING,
            "label": {"format": "pdf", "data_base64": _b64(_pdf_label(NEW_TRACKING))},
        }
    ]
    cloud.publish("order", "D-0001", order_body("D-0001", parcels=parcels))
    agent.wait_synced()

    new = _reprint(agent, first["job_id"], "rp2")
    assert (new["status"], new["tracking_number"]) == ("sent", NEW_TRACKING)
    labels = label_printer.wait_for_labels(3)
    assert _printed_number(labels[2]) == [NEW_TRACKING]  # what the carrier's scanner reads
    assert agent.http.get(f"/api/v1/jobs/{new['job_id']}").json()["tracking_number"] == NEW_TRACKING
