"""Unusual activity raises an alert within 30 s: an exception in the center and an `alert.raised`
webhook, with who, where and what; thresholds per tenant."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from cloud.access import alerts, users
from cloud.access.alerts import AlertKind
from cloud.access.principals import Role, Unauthenticated, authenticate_api_token, create_token
from cloud.storage import schema
from cloud.storage.store import CloudStore, utcnow
from dockside.v1 import sync_pb2
from tests.cloud.conftest import STATION, RunningCloud, order
from tests.cloud.webhook_receiver import Receiver, receiver_fixture  # noqa: F401 - a fixture

PASSWORD = "correct horse battery staple"


def _alerts(store: CloudStore, kind: AlertKind | None = None) -> list[dict[str, Any]]:
    """The tenant's alert exceptions, newest first, as the exception center lists them."""
    table = schema.order_exceptions
    with store.read() as conn:
        rows = conn.execute(
            select(table.c.detail, table.c.message, table.c.warehouse_id)
            .where(table.c.kind == "access_alert")
            .order_by(table.c.id.desc())
        ).all()
    found = [
        {**json.loads(row.detail), "message": row.message, "warehouse_id": row.warehouse_id} for row in rows
    ]
    return [alert for alert in found if kind is None or alert["alert"] == kind.value]


def _until(condition: Callable[[], Any], deadline_s: float) -> Any:
    """The condition's first truthy value, polled until the deadline (then its last value)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _reprint(station: str, ref: str) -> Any:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind="label_reprinted",
        order_ref=ref,
        station=station,
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps({"job_id": str(uuid.uuid4()), "reason": "smudged"}).encode(),
        sequence=1,
    )


def test_twenty_reprints_in_a_minute_at_one_station_raise_an_alert_within_30_s(
    cloud: RunningCloud, receiver: Receiver
) -> None:
    hook = cloud.api.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["alert.raised"]})
    assert hook.status_code == 201, hook.text
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    assert cloud.ingest(order("R1"))["errors"] == []
    agent = cloud.enroll("WH1")
    answer = agent.push(*[_reprint("S1", "R1") for _ in range(20)])
    assert len(answer.acked) == 20, answer
    started = time.monotonic()

    # The cloud's own scanner (run_cloud runs it) finds the burst: no test code calls it.
    (raised,) = _until(lambda: _alerts(cloud.store, AlertKind.REPRINT_BURST), 30)
    assert time.monotonic() - started < 30
    assert raised["where"] == {"warehouse": "WH1", "station": "S1"}
    assert raised["who"] == {"actor": f"agent:{agent.agent_id}", "name": "S1"}
    assert "reprinted" in raised["what"]
    listed = cloud.api.get("/api/v1/exceptions", params={"kind": "access_alert"}).json()["exceptions"]
    assert [(e["warehouse"], e["detail"]["alert"]) for e in listed] == [("WH1", "reprint_burst")]

    (delivery,) = receiver.wait_for(1, timeout_s=30)
    assert time.monotonic() - started < 30
    event = json.loads(delivery["body"])
    assert delivery["headers"]["X-Dockside-Event"] == "alert.raised"
    payload = event["data"]
    assert payload["where"] == {"warehouse": "WH1", "station": "S1"}
    assert payload["alert"] == "reprint_burst"
    # One burst, one alert: the next scans find the same burst already raised.
    assert alerts.scan_reprint_bursts(cloud.store) == 0


def test_a_few_reprints_raise_nothing_and_thresholds_are_per_tenant(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    assert cloud.ingest(order("R1"))["errors"] == []
    agent = cloud.enroll("WH1")
    assert len(agent.push(*[_reprint("S1", "R1") for _ in range(5)]).acked) == 5
    assert alerts.scan_reprint_bursts(cloud.store) == 0
    # This tenant finds five reprints a minute unusual already.
    lowered = cloud.api.put("/api/v1/alerts/thresholds/reprint_burst", json={"count": 5, "window_s": 60})
    assert lowered.status_code == 200, lowered.text
    assert alerts.scan_reprint_bursts(cloud.store) == 1
    shown = {t["kind"]: t for t in cloud.api.get("/api/v1/alerts/thresholds").json()["thresholds"]}
    assert shown["reprint_burst"] == {"kind": "reprint_burst", "count": 5, "window_s": 60, "default": False}
    assert shown["failed_sign_ins"]["default"] is True
    (logged,) = cloud.api.get("/api/v1/audit", params={"object_kind": "alert_threshold"}).json()["entries"]
    assert (logged["before"]["count"], logged["after"]["count"]) == (10, 5)


def test_a_sign_in_from_a_new_address_raises_an_alert(store: CloudStore) -> None:
    made = users.create_user(store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    totp = pyotp.TOTP(made.totp_secret)
    users.sign_in(store, email="ops@example.com", password=PASSWORD, code=totp.now(), address="198.51.100.1")
    assert _alerts(store) == []  # the first address is the baseline
    later = utcnow() + timedelta(seconds=30)  # a code is accepted once: the next one
    users.sign_in(
        store,
        email="ops@example.com",
        password=PASSWORD,
        code=totp.at(later),
        address="203.0.113.9",
        now=later,
    )
    (raised,) = _alerts(store, AlertKind.NEW_SIGN_IN_ADDRESS)
    assert raised["who"] == {"actor": f"user:{made.id}", "name": "ops@example.com"}
    assert raised["where"] == {"address": "203.0.113.9"}
    assert raised["warehouse_id"] is None  # tenant-wide: only tenant-wide callers see it
    with store.read() as conn:
        kinds = conn.execute(select(schema.webhook_events.c.kind)).scalars().all()
    assert "alert.raised" in kinds


def test_repeated_failed_sign_ins_raise_one_alert(store: CloudStore) -> None:
    made = users.create_user(store, email="ops@example.com", name="Ops", password=PASSWORD, role=Role.ADMIN)
    for n in range(5):
        with pytest.raises(Unauthenticated):
            users.sign_in(
                store, email="ops@example.com", password="wrong!", code="000000", address=f"192.0.2.{n}"
            )
    (raised,) = _alerts(store, AlertKind.FAILED_SIGN_INS)
    assert raised["who"] == {"actor": f"user:{made.id}", "name": "ops@example.com"}
    assert raised["where"] == {"address": "192.0.2.4"}
    assert "5 failed sign-ins" in raised["what"]


def test_a_token_used_from_a_new_address_raises_an_alert(store: CloudStore) -> None:
    made = create_token(store, name="oms", role=Role.INTEGRATION)
    authenticate_api_token(store, made.secret, address="198.51.100.1")
    authenticate_api_token(store, made.secret, address="198.51.100.1")
    assert _alerts(store) == []
    authenticate_api_token(store, made.secret, address="203.0.113.50")
    (raised,) = _alerts(store, AlertKind.TOKEN_NEW_ADDRESS)
    assert raised["who"] == {"actor": f"token:{made.id}", "name": "oms"}
    assert raised["where"] == {"address": "203.0.113.50"}


def test_a_kind_with_count_zero_is_off(store: CloudStore) -> None:
    alerts.set_threshold(store, store.tenant_id(), AlertKind.TOKEN_NEW_ADDRESS, alerts.Threshold(0, 60))
    made = create_token(store, name="oms", role=Role.INTEGRATION)
    for address in ("198.51.100.1", "198.51.100.2"):
        authenticate_api_token(store, made.secret, address=address)
    assert _alerts(store) == []


def test_a_bulk_export_raises_an_alert_naming_who_exported(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.ingest(*[order(f"R{n}") for n in range(12)])["errors"] == []
    lowered = cloud.api.put("/api/v1/alerts/thresholds/bulk_export", json={"count": 10, "window_s": 60})
    assert lowered.status_code == 200
    exported = cloud.api.get("/api/v1/export/orders")
    assert exported.status_code == 200
    assert len(exported.text.splitlines()) == 12
    (raised,) = _alerts(cloud.store, AlertKind.BULK_EXPORT)
    (me,) = [t for t in cloud.api.get("/api/v1/tokens").json()["tokens"] if t["name"] == "tests"]
    assert raised["who"] == {"actor": f"token:{me['id']}", "name": "tests"}
    assert raised["where"] == {"export": "orders"}


def test_thresholds_are_set_by_a_tenant_wide_admin_only(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    scoped = create_token(cloud.store, name="wh1", role=Role.ADMIN, warehouses=["WH1"])
    with httpx.Client(
        base_url=f"http://{cloud.http_address}",
        headers={"Authorization": f"Bearer {scoped.secret}"},
        timeout=30,
    ) as client:
        refused = client.put("/api/v1/alerts/thresholds/reprint_burst", json={"count": 1, "window_s": 60})
    assert refused.status_code == 403
    assert alerts.thresholds(cloud.store, cloud.store.tenant_id())[AlertKind.REPRINT_BURST].count == 10
