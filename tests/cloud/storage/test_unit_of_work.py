"""One transaction for an admin write and its audit entry (CloudStore.unit_of_work), on both backends."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from cloud.access.principals import Principal, Role
from cloud.records import audit
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore
from cloud.webhooks.targets import ALLOW_PRIVATE_ENV
from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud, order

ADMIN = Principal(tenant_id=1, token_name="tests", role=Role.ADMIN, tenant="default", warehouses=None)


class AuditDown(RuntimeError):
    """The audit write failed (a full disk, a lost connection...)."""


def _count(store: CloudStore, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _add_tenant(store: CloudStore, code: str) -> None:
    with store.write() as tx:
        tx.conn.execute(insert(schema.tenants).values(code=code, name=code, created_at=tx.now))


def _write_then_fail_auditing(store: CloudStore) -> None:
    with store.unit_of_work():
        _add_tenant(store, "acme")
        audit.record(store, ADMIN, "create_tenant", "tenant", "acme", None, {"code": "acme"})
        raise AuditDown("the audit insert failed")


def test_a_failing_audit_write_rolls_back_the_write_it_describes(store: CloudStore) -> None:
    with pytest.raises(AuditDown):
        _write_then_fail_auditing(store)
    with store.read() as conn:
        assert conn.execute(select(schema.tenants.c.code)).scalars().all() == ["default"]
    assert _count(store, schema.audit_log) == 0


def test_a_unit_commits_the_write_and_its_entry_together(store: CloudStore) -> None:
    with store.unit_of_work():
        _add_tenant(store, "acme")
        # Reads inside the unit see its own uncommitted write.
        with store.read() as conn:
            assert "acme" in conn.execute(select(schema.tenants.c.code)).scalars().all()
        audit.record(store, ADMIN, "create_tenant", "tenant", "acme", None, {"code": "acme"})
    assert _count(store, schema.tenants) == 2
    assert [entry["object_key"] for entry in audit.query_audit(store, 1)] == ["acme"]


def _refused_write(store: CloudStore) -> None:
    with store.write() as tx:
        tx.conn.execute(insert(schema.tenants).values(code="undone", name="x", created_at=tx.now))
        raise AuditDown("refused")


def test_an_error_caught_inside_a_unit_undoes_only_its_own_savepoint(store: CloudStore) -> None:
    with store.unit_of_work():
        _add_tenant(store, "kept")
        with pytest.raises(AuditDown):
            _refused_write(store)
        _add_tenant(store, "also-kept")
    with store.read() as conn:
        codes = set(conn.execute(select(schema.tenants.c.code)).scalars())
    assert codes == {"default", "kept", "also-kept"}


def _change_then_fail(store: CloudStore, ran: list[str]) -> None:
    with store.unit_of_work():
        with store.write() as tx:
            tx.append_changes([ChangeRecord(tenant_id=1, warehouse_id=None, kind="k", key="a", body="{}")])
            tx.after_commit(lambda: ran.append("rolled back"))
        raise AuditDown("fails after the inner write ended")


def test_watchers_and_after_commit_hooks_wake_only_when_the_unit_commits(store: CloudStore) -> None:
    ran: list[str] = []
    start = store.notifier.latest
    with pytest.raises(AuditDown):
        _change_then_fail(store, ran)
    assert (ran, store.notifier.latest, store.current_revision()) == ([], start, start)

    with store.unit_of_work():
        with store.write() as tx:
            tx.append_changes([ChangeRecord(tenant_id=1, warehouse_id=None, kind="k", key="b", body="{}")])
            tx.after_commit(lambda: ran.append("committed"))
        # Not yet: the unit is still open.
        assert ran == []
        assert store.notifier.latest == start
    assert ran == ["committed"]
    assert store.notifier.latest == store.current_revision() == start + 1


def test_a_unit_with_no_write_opens_no_transaction_and_other_threads_are_apart(store: CloudStore) -> None:
    seen: list[int] = []
    with store.unit_of_work():
        assert _count(store, schema.tenants) == 1  # a plain read, no write lock taken
        _add_tenant(store, "inside")
        # Another thread is not in this unit: its write waits for the unit's commit (SQLite) or
        # commits on its own (PostgreSQL), and never joins our transaction.
        other = threading.Thread(target=lambda: (_add_tenant(store, "other"), seen.append(1)))
        other.start()
    other.join(timeout=30)
    assert seen == [1]
    assert _count(store, schema.tenants) == 3


def test_a_failing_audit_write_over_http_leaves_nothing_changed(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/templates/t1/versions", json=TEMPLATE).status_code == 201
    cloud.ingest(order("A1"))
    revision, entries = cloud.store.current_revision(), _count(cloud.store, schema.audit_log)
    real = audit.record

    def failing(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)  # the entry is written, then the audit write fails as a whole
        raise AuditDown("audit storage is down")

    monkeypatch.setattr(audit, "record", failing)
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")  # the webhook below is on loopback
    writes = [
        ("POST", "/api/v1/warehouses", {"code": "WH2", "name": "Two"}),
        ("POST", "/api/v1/warehouses/WH1/stations", STATION),
        ("POST", "/api/v1/templates/t1/versions/1/publish", None),
        ("POST", "/api/v1/orders/A1/cancel", {"reason": "fraud"}),
        ("POST", "/api/v1/orders", {"orders": [order("A2")]}),
        ("POST", "/api/v1/rulesets/default/versions", {"default": {"carrier": "POST"}}),
        ("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["exception.opened"]}),
    ]
    for method, path, body in writes:
        answer = cloud.api.request(method, path, json=body)
        assert answer.status_code == 500, (path, answer.text)
        assert answer.json()["error"]["code"]
    monkeypatch.setattr(audit, "record", real)
    assert cloud.store.current_revision() == revision
    assert _count(cloud.store, schema.audit_log) == entries
    assert cloud.api.get("/api/v1/warehouses/WH2").status_code == 404
    assert cloud.api.get("/api/v1/orders/A1").json()["state"] == "created"
    assert cloud.api.get("/api/v1/orders/A2").status_code == 404
    assert cloud.api.get("/api/v1/rulesets/default/versions").status_code == 404
    assert cloud.api.get("/api/v1/webhooks").json()["webhooks"] == []
    assert cloud.api.get("/api/v1/templates/t1/versions").json()["versions"][0].get("active") is not True
