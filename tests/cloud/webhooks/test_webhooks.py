"""Webhooks over real HTTP: signed deliveries to a real receiver, retries with backoff, the log, replay."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from cloud.fleet import warehouses
from cloud.orders import ingest as orders
from cloud.orders import states as order_states
from cloud.storage.store import CloudStore, utcnow
from cloud.webhooks import delivery as webhooks
from dockside.orders import OrderState
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order
from tests.cloud.webhook_receiver import Receiver, receiver_fixture  # noqa: F401 (the `receiver` fixture)


def _subscribe(cloud: RunningCloud, url: str, events: list[str]) -> dict[str, Any]:
    response = cloud.api.post("/api/v1/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    parts = dict(part.split("=", 1) for part in headers["X-Dockside-Signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 300


def test_state_changes_and_exceptions_are_delivered_signed(cloud: RunningCloud, receiver: Receiver) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("H1"))
    cloud.api.post("/api/v1/orders/H1/state", json={"state": "released"})  # before subscribing: not sent
    sub = _subscribe(cloud, receiver.url, ["order.state_changed", "exception.opened"])
    assert sub["secret"].startswith("whsec_")
    assert "secret" not in cloud.api.get("/api/v1/webhooks").json()["webhooks"][0]
    cloud.api.post("/api/v1/orders/H1/cancel", json={"reason": "customer"})

    # The cloud's own dispatcher delivers it (it runs every second): wait for it.
    deadline = time.monotonic() + 20
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.received, "no delivery arrived"
    (got,) = receiver.received
    _verify(sub["secret"], got["headers"], got["body"])
    payload = json.loads(got["body"])
    assert payload["event"] == "order.state_changed"
    assert got["headers"]["X-Dockside-Event"] == "order.state_changed"
    # The event id rides in a header too, so a subscriber can dedupe before parsing the body.
    assert got["headers"]["X-Dockside-Event-Id"] == str(payload["event_id"])
    assert payload["data"] == {
        "order_ref": "H1",
        "warehouse": "WH1",
        "from": "released",
        "to": "cancelled",
        "by": "tests",
    }
    # A tampered body does not verify.
    with pytest.raises(AssertionError):
        _verify(sub["secret"], got["headers"], got["body"].replace(b"H1", b"H2"))
    log = cloud.api.get(f"/api/v1/webhooks/{sub['id']}/deliveries").json()["deliveries"]
    assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("order.state_changed", "delivered", 1, 204)
    ]


def test_failed_deliveries_are_retried_with_backoff_then_given_up(
    store: CloudStore, receiver: Receiver
) -> None:
    # No running cloud here: this test is the only dispatcher, with a clock it controls.
    tenant = store.tenant_id()
    warehouses.put_warehouse(store, tenant, warehouses.WarehouseIn(code="WH1", name="One"))
    orders.ingest_orders(store, tenant, [order("R1")])
    event = [webhooks.WebhookEvent.ORDER_STATE_CHANGED]
    sub = webhooks.create_subscription(store, tenant, receiver.url, event)
    receiver.fail = 2
    order_states.change_state(store, tenant, "R1", OrderState.RELEASED, by="tests")
    start = utcnow() + timedelta(seconds=1)  # new deliveries are due from the moment they are queued
    with httpx.Client() as client:
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start) == 1
        # Not due yet: the backoff (10 s after the first failure) holds the next attempt back.
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start + timedelta(seconds=5)) == 0
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start + timedelta(seconds=11)) == 1
        # Second failure: 20 s more.
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start + timedelta(seconds=25)) == 0
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start + timedelta(seconds=32)) == 1
        assert webhooks.deliver_due(store, client, backoff_s=10, now=start + timedelta(hours=1)) == 0
    (delivery,) = webhooks.list_deliveries(store, tenant, sub["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 3, 204)
    assert [r["failed"] for r in receiver.received] == [True, True, False]
    # The same event id every time, so the OMS can dedupe.
    assert len({json.loads(r["body"])["event_id"] for r in receiver.received}) == 1

    # A subscriber that is gone: attempts stop at MAX_ATTEMPTS and the delivery is marked failed.
    dead = webhooks.create_subscription(store, tenant, "http://127.0.0.1:9/nobody", event)
    order_states.change_state(store, tenant, "R1", OrderState.CREATED, by="tests")
    with httpx.Client() as client:
        for step in range(webhooks.MAX_ATTEMPTS + 2):
            webhooks.deliver_due(store, client, backoff_s=1, now=start + timedelta(days=1, hours=step * 2))
    (gone,) = webhooks.list_deliveries(store, tenant, dead["id"])
    assert (gone["status"], gone["attempts"]) == ("failed", webhooks.MAX_ATTEMPTS)
    assert gone["last_error"].startswith("could not deliver")


def test_replay_sends_every_event_since_a_point_in_time_again(
    cloud: RunningCloud, receiver: Receiver
) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("P1"), order("P2"))
    sub = _subscribe(cloud, receiver.url, ["order.state_changed"])
    middle = None
    for ref in ("P1", "P2"):
        cloud.api.post(f"/api/v1/orders/{ref}/state", json={"state": "released"})
        if middle is None:
            time.sleep(0.01)  # two distinct timestamps around the cut (not a wait for a condition)
            middle = utcnow()
    deadline = time.monotonic() + 20
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.received) == 2
    replayed = cloud.api.post(f"/api/v1/webhooks/{sub['id']}/replay", json={"since": middle.isoformat()})
    assert replayed.json() == {"webhook": sub["id"], "queued": 1}
    while len(receiver.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(receiver.received[-1]["body"])["data"]["order_ref"] == "P2"
    assert (
        cloud.api.post("/api/v1/webhooks/999/replay", json={"since": middle.isoformat()}).status_code == 404
    )
    assert (
        cloud.api.post(
            "/api/v1/webhooks", json={"url": "ftp://x/y", "events": ["order.state_changed"]}
        ).status_code
        == 422
    )
    assert cloud.api.delete(f"/api/v1/webhooks/{sub['id']}").json()["active"] is False


def test_a_labelled_parcel_is_delivered_with_its_tracking(cloud: RunningCloud, receiver: Receiver) -> None:
    cloud.put_warehouse("WH1")
    cloud.ingest(order("PL1"))
    agent = cloud.enroll("WH1")
    sub = _subscribe(cloud, receiver.url, ["parcel.labelled"])
    body = {
        "job_id": "job-1",
        "weight_g": 1180,
        "carrier": "ups",
        "service": "ground",
        "parcel": 1,
        "document": "shipping_label",
        "tracking_number": "1Z999AA10123456784",
        "dimensions_mm": [300, 200, 150],
        "sscc": "",
    }
    event = sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind="label_printed",
        order_ref="PL1",
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(body).encode(),
        sequence=1,
    )
    assert list(agent.push(event).acked) == [event.event_id]
    (got,) = receiver.wait_for(1)
    _verify(sub["secret"], got["headers"], got["body"])
    payload = json.loads(got["body"])
    assert payload["event"] == "parcel.labelled"
    assert payload["data"] == {
        "order_ref": "PL1",
        "warehouse": "WH1",
        "parcel": 1,
        "tracking_number": "1Z999AA10123456784",
        "carrier": "ups",
        "service": "ground",
        "weight_g": 1180,
        "dimensions_mm": [300, 200, 150],
    }
