"""Confirmed printing at the cloud, over real gRPC and HTTP: `label_confirmed`, `label_unconfirmed` and
`label_held_in_printer` are accepted, carry their job id, leave the parcel labelled by `label_printed`
as it was, and show on the order's events and timeline; a hostile body is rejected, never acked."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from dockside.v1 import sync_pb2
from tests.cloud.conftest import Agent, RunningCloud, order


def _event(kind: str, sequence: int, **extra: Any) -> sync_pb2.EdgeEvent:
    body = {
        "job_id": "job-C-1",
        "weight_g": 1000,
        "carrier": "ups",
        "service": "ground",
        "printer": "ZD421-1",
        "parcel": 1,
        "document": "shipping_label",
        "tracking_number": "1Z999AA10000000011",
        "sscc": "",
        **extra,
    }
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref="C-1",
        station="S1",
        occurred_at_ms=int(time.time() * 1000) + sequence,
        body=json.dumps(body).encode(),
        sequence=sequence,
    )


@pytest.fixture
def agent(cloud: RunningCloud) -> Agent:
    cloud.put_warehouse("WH1")
    assert cloud.ingest(order("C-1"))["errors"] == []
    return cloud.enroll("WH1")


def test_the_timeline_shows_a_label_sent_held_in_the_printer_then_confirmed(
    cloud: RunningCloud, agent: Agent
) -> None:
    events = [
        _event("label_printed", 1),
        _event("label_held_in_printer", 2, message="out of labels: load labels", faults=["paper_out"]),
        _event("label_confirmed", 3),
    ]

    answer = agent.push(*events)

    assert list(answer.acked) == [event.event_id for event in events]
    assert list(answer.rejected) == []
    seen = cloud.api.get("/api/v1/orders/C-1").json()
    kinds = [event["kind"] for event in seen["events"]]
    assert kinds[-3:] == ["label_printed", "label_held_in_printer", "label_confirmed"]
    assert {event["body"]["job_id"] for event in seen["events"] if event["kind"].startswith("label_")} == {
        "job-C-1"
    }
    assert seen["parcels"][0]["state"] == "labelled"  # labelled at the send, as before
    timeline = cloud.api.get("/api/v1/orders/C-1/timeline").json()["timeline"]
    confirmed = [entry for entry in timeline if entry["kind"] == "label_confirmed"]
    assert len(confirmed) == 1
    assert confirmed[0]["parcel"]["tracking_number"] == "1Z999AA10000000011"
    assert confirmed[0]["source"]["printer"] == "ZD421-1"


def test_an_unconfirmed_label_is_on_the_timeline_with_its_message(cloud: RunningCloud, agent: Agent) -> None:
    message = "ZD421 S1-label at S1 could not confirm this label (no answer within 30 s): check it came out"
    events = [_event("label_printed", 1), _event("label_unconfirmed", 2, message=message, reason="no_answer")]

    assert len(agent.push(*events).acked) == 2

    timeline = cloud.api.get("/api/v1/orders/C-1/timeline").json()["timeline"]
    (unconfirmed,) = [entry for entry in timeline if entry["kind"] == "label_unconfirmed"]
    assert unconfirmed["detail"]["message"] == message


@pytest.mark.parametrize("kind", ["label_confirmed", "label_unconfirmed", "label_held_in_printer"])
def test_a_confirmation_with_hostile_parcel_facts_is_rejected(
    cloud: RunningCloud, agent: Agent, kind: str
) -> None:
    hostile = _event(kind, 1, parcel=-4, tracking_number="not a number\x00")

    answer = agent.push(hostile)

    assert list(answer.acked) == []
    assert [rejected.event_id for rejected in answer.rejected] == [hostile.event_id]
