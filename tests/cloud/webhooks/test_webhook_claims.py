"""Two cloud replicas on one database deliver each webhook once; a dead replica's claim is taken again."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from cloud.fleet import warehouses
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from cloud.webhooks import delivery as webhooks
from tests.cloud.webhook_receiver import Receiver, receiver_fixture  # noqa: F401 (the `receiver` fixture)

EVENTS = 300


def _emit(store: CloudStore, count: int, first: int = 0) -> None:
    tenant = store.tenant_id()
    with store.write() as tx:
        webhooks.emit(
            tx,
            tenant,
            webhooks.WebhookEvent.ORDER_STATE_CHANGED,
            [{"order_ref": f"R{n}", "to": "released"} for n in range(first, first + count)],
        )


def _statuses(store: CloudStore) -> Counter[str]:
    with store.read() as conn:
        return Counter(conn.execute(select(schema.webhook_deliveries.c.status)).scalars())


def test_two_replicas_racing_deliver_every_event_exactly_once(database_url: str, receiver: Receiver) -> None:
    replicas = [CloudStore.open(database_url), CloudStore.open(database_url)]
    try:
        tenant = replicas[0].tenant_id()
        warehouses.put_warehouse(replicas[0], tenant, warehouses.WarehouseIn(code="WH1", name="One"))
        webhooks.create_subscription(
            replicas[0], tenant, receiver.url, [webhooks.WebhookEvent.ORDER_STATE_CHANGED]
        )
        _emit(replicas[0], EVENTS)
        attempted = Counter[str]()
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def dispatch(store: CloudStore, name: str) -> None:
            try:
                start.wait(timeout=30)
                deadline = time.monotonic() + 120
                with httpx.Client() as client:
                    while _statuses(store)["delivered"] < EVENTS and time.monotonic() < deadline:
                        attempted[name] += webhooks.deliver_due(store, client, dispatcher=name)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=dispatch, args=(store, name))
            for store, name in zip(replicas, ("replica-a", "replica-b"), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert errors == []
        ids = Counter(json.loads(request["body"])["event_id"] for request in receiver.received)
        assert len(ids) == EVENTS
        assert [event for event, times in ids.items() if times > 1] == []
        assert sum(attempted.values()) == EVENTS
        assert _statuses(replicas[0]) == Counter({"delivered": EVENTS})
        with replicas[0].read() as conn:
            claims = conn.execute(select(schema.webhook_deliveries.c.claimed_by)).scalars().all()
        assert set(claims) == {None}  # a finished delivery lets go of its claim
    finally:
        for store in replicas:
            store.close()


class ReplicaDied(BaseException):
    """The process sending a delivery died after the subscriber got it, before the outcome was saved."""


class _DiesAfterSending(httpx.BaseTransport):
    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.real.handle_request(request).read()
        raise ReplicaDied("killed mid-delivery")


def _deliver_and_die(store: CloudStore, now: datetime) -> None:
    with httpx.Client(transport=_DiesAfterSending()) as dying:
        webhooks.deliver_due(store, dying, dispatcher="replica-a", now=now)


def test_a_claim_abandoned_mid_delivery_is_delivered_again_after_it_expires(
    database_url: str, receiver: Receiver
) -> None:
    replica_a, replica_b = CloudStore.open(database_url), CloudStore.open(database_url)
    try:
        tenant = replica_a.tenant_id()
        sub = webhooks.create_subscription(
            replica_a, tenant, receiver.url, [webhooks.WebhookEvent.ORDER_STATE_CHANGED]
        )
        _emit(replica_a, 1)
        start = utcnow() + timedelta(seconds=1)
        with pytest.raises(ReplicaDied):
            _deliver_and_die(replica_a, start)
        assert len(receiver.received) == 1
        with httpx.Client() as client:
            # The claim still holds: replica B leaves the delivery alone...
            before_expiry = start + webhooks.CLAIM - timedelta(seconds=1)
            assert webhooks.deliver_due(replica_b, client, dispatcher="replica-b", now=before_expiry) == 0
            # ...until it expires; then B sends it again (at least once).
            after_expiry = start + webhooks.CLAIM + timedelta(seconds=1)
            assert webhooks.deliver_due(replica_b, client, dispatcher="replica-b", now=after_expiry) == 1
        first, second = receiver.received
        assert first["body"] == second["body"]
        # The same event id, in the body and a header: the subscriber dedupes with it.
        assert first["headers"]["X-Dockside-Event-Id"] == second["headers"]["X-Dockside-Event-Id"]
        assert first["headers"]["X-Dockside-Delivery"] == second["headers"]["X-Dockside-Delivery"]
        (delivery,) = webhooks.list_deliveries(replica_a, tenant, sub["id"])
        assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)
    finally:
        replica_a.close()
        replica_b.close()
