"""Order ingest and lookup over real HTTP: good, bad, hostile and oversized batches, idempotency."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from cloud.fleet.agents import authenticate_agent
from cloud.storage import schema
from cloud.storage.store import CloudStore
from cloud.sync.edge_events import apply_events
from cloud.sync.incoming_events import IncomingEvent
from tests.cloud.conftest import RunningCloud, order


@pytest.fixture
def wh1(cloud: RunningCloud) -> RunningCloud:
    cloud.put_warehouse("WH1")
    return cloud


def _change_count(cloud: RunningCloud) -> int:
    with cloud.store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM changes WHERE kind = 'order'")).scalar_one())


def test_good_orders_are_accepted_and_readable(wh1: RunningCloud) -> None:
    answer = wh1.ingest(order("A-1"), order("A-2", service_level="express"))
    assert answer == {"accepted": ["A-1", "A-2"], "errors": []}
    got = wh1.api.get("/api/v1/orders/A-2").json()
    assert got["service_level"] == "express"
    assert got["state"] == "created"
    assert got["value"] == {"amount": "49.90", "currency": "USD"}
    assert got["events"] == []
    assert got["created_at"] == got["updated_at"]
    assert got["created_at"].endswith("+00:00")
    assert wh1.api.get("/api/v1/orders/A-3").status_code == 404


def test_bad_orders_are_reported_by_index_and_the_good_ones_kept(wh1: RunningCloud) -> None:
    batch = [
        order("OK-1"),
        order("BAD-1", ship_to={"name": "x", "street": "s", "city": "c", "country": "usa"}),
        {"order_ref": "BAD-2"},
        "not an order",
        order("BAD-3", lines=[]),
        order("BAD-4", warehouse="WH9"),
        order("OK-2"),
        order("BAD 5"),
        None,
        order("BAD-6", extra_field=1),
    ]
    answer = wh1.api.post("/api/v1/orders", json={"orders": batch}).json()
    assert answer["accepted"] == ["OK-1", "OK-2"]
    errors = {e["index"]: e for e in answer["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 5, 7, 8, 9]
    assert errors[1]["order_ref"] == "BAD-1"
    assert errors[1]["code"] == "invalid_order"
    assert errors[1]["message"].startswith("ship_to.country:")
    assert "warehouse is missing" in errors[2]["message"]
    assert errors[3]["order_ref"] is None
    assert errors[3]["message"].startswith("the order must be a JSON object")
    assert errors[4]["message"].startswith("lines:")
    assert errors[5]["code"] == "unknown_warehouse"
    assert "WH9" in errors[5]["message"]
    assert errors[7]["message"].startswith("order_ref may only hold letters")
    assert errors[9]["message"].startswith("extra_field is not a field")
    assert all(set(e) == {"index", "order_ref", "code", "message"} for e in answer["errors"])
    assert wh1.api.get("/api/v1/orders/BAD-4").status_code == 404


def test_hostile_orders_are_refused_without_echoing_them(wh1: RunningCloud) -> None:
    long_ref = "R" * 5000
    batch = [
        order(long_ref),
        order("H-1", ship_to={"name": "<script>" * 100, "street": "s", "city": "c", "country": "US"}),
        order("H-2", lines=[{"sku": "x", "qty": 10**30}]),
        order("H-3", value={"amount": "1e400", "currency": "USD"}),
        order("H-4", expected_weight_g=-5),
        order("H-5", lines=[{"sku": "x"}] * 1001),
        {"order_ref": {"$gt": ""}},
        order(
            "H-6", ship_to={"name": "名前 \u202e", "street": "ул. Ленина", "city": "Zürich", "country": "CH"}
        ),
    ]
    response = wh1.api.post("/api/v1/orders", json={"orders": batch})
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == ["H-6"]  # any script in free text is fine
    assert [e["index"] for e in answer["errors"]] == [0, 1, 2, 3, 4, 5, 6]
    assert answer["errors"][0]["order_ref"] is None  # a 5,000-character ref is not echoed
    assert long_ref not in response.text
    assert "<script>" not in response.text
    assert wh1.api.get("/api/v1/orders/H-6").json()["ship_to"]["city"] == "Zürich"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"{not json", 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
        (b'{"orders": {"a": 1}}', 422, "invalid_input"),
        (b'{"order": []}', 422, "invalid_input"),
        (b'{"orders": [], "more": 1}', 422, "invalid_input"),
        (b"\xff\xfe\x00", 400, "invalid_json"),
    ],
)
def test_a_malformed_batch_is_refused_whole(wh1: RunningCloud, body: bytes, status: int, code: str) -> None:
    response = wh1.api.post("/api/v1/orders", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text


def test_ten_thousand_orders_in_one_call_work_and_one_more_is_refused(wh1: RunningCloud) -> None:
    batch = [order(f"BULK-{i:05d}") for i in range(10_000)]
    answer = wh1.ingest(*batch)  # how fast is bench/ingest.py's business, not a test's
    assert answer["errors"] == []
    assert len(answer["accepted"]) == 10_000
    with wh1.store.engine.connect() as conn:
        revisions = [
            r
            for (r,) in conn.execute(
                text("SELECT revision FROM changes WHERE kind = 'order' ORDER BY revision")
            )
        ]
    assert revisions == list(range(2, 10_002))  # revision 1 is the warehouse; one block after it

    too_many = [order(f"MORE-{i:05d}") for i in range(10_001)]
    response = wh1.api.post("/api/v1/orders", json={"orders": too_many})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "too_many_orders"
    assert "10,000" in error["message"]
    assert "10,001" in error["message"]
    assert wh1.api.get("/api/v1/orders/MORE-00000").status_code == 404


def test_a_body_over_32_mib_is_refused_even_without_a_content_length(wh1: RunningCloud) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"orders": ['
        # Big orders, so the body passes 32 MiB before it passes 10,000 orders.
        filler = json.dumps(order("BIG", ship_to={"name": "x" * 5000})).encode()
        for _ in range(33 * 1024 * 1024 // len(filler) + 1):
            yield filler + b","
        yield b"{}]}"

    response = wh1.api.post("/api/v1/orders", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    declared = wh1.api.post(
        "/api/v1/orders", content=b"x" * (33 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert "33,554,432 bytes" in declared.json()["error"]["message"]


def test_sending_the_same_orders_again_changes_nothing(wh1: RunningCloud) -> None:
    batch = [order(f"IDEM-{i}") for i in range(50)]
    assert len(wh1.ingest(*batch)["accepted"]) == 50
    revision, changes = wh1.store.current_revision(), _change_count(wh1)
    again = wh1.ingest(*batch)
    assert again == {"accepted": [o["order_ref"] for o in batch], "errors": []}
    # Whitespace and key order do not make an order different.
    reordered = {key: batch[0][key] for key in reversed(list(batch[0]))}
    assert wh1.api.post("/api/v1/orders", content=json.dumps({"orders": [reordered]}, indent=4)).json()[
        "accepted"
    ] == ["IDEM-0"]
    assert (wh1.store.current_revision(), _change_count(wh1)) == (revision, changes)


def test_a_changed_order_is_updated_while_created_with_a_new_change(wh1: RunningCloud) -> None:
    wh1.ingest(order("CH-1"))
    before = wh1.api.get("/api/v1/orders/CH-1").json()
    revision = wh1.store.current_revision()
    answer = wh1.ingest(order("CH-1", expected_weight_g=2500))
    assert answer == {"accepted": ["CH-1"], "errors": []}
    after = wh1.api.get("/api/v1/orders/CH-1").json()
    assert after["expected_weight_g"] == 2500
    assert after["updated_at"] > before["updated_at"]
    assert wh1.store.current_revision() == revision + 1
    with wh1.store.engine.connect() as conn:
        body = conn.execute(text("SELECT body FROM changes ORDER BY revision DESC LIMIT 1")).scalar_one()
    assert json.loads(body) == {**order("CH-1", expected_weight_g=2500), **_defaults(), "state": "created"}


def _defaults() -> dict[str, object]:
    ship_to = order("x")["ship_to"]
    return {
        "ship_to": {**ship_to, "street2": "", "region": ""},
        "lines": [
            {
                "sku": "SKU-1",
                "qty": 2,
                "description": "",
                "barcode": "",
                "hs_code": "",
                "origin_country": "",
                "unit_value": None,
            }
        ],
        "po_number": "",
        "ship_to_gln": "",
        "parcels": [],
    }


def test_a_moved_order_is_deleted_from_its_old_warehouse(wh1: RunningCloud) -> None:
    wh1.put_warehouse("WH2")
    wh1.ingest(order("MV-1"))
    wh1.ingest(order("MV-1", warehouse="WH2"))
    with wh1.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT w.code, c.deleted FROM changes c JOIN warehouses w ON w.id = c.warehouse_id "
                "WHERE c.key = 'MV-1' ORDER BY c.revision"
            )
        ).all()
    assert [(r.code, bool(r.deleted)) for r in rows] == [("WH1", False), ("WH1", True), ("WH2", False)]


def test_duplicates_within_one_batch(wh1: RunningCloud) -> None:
    answer = wh1.ingest(order("D-1"), order("D-1"), order("D-1", expected_weight_g=1))
    assert answer["accepted"] == ["D-1", "D-1"]
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(2, "duplicate_order_ref")]
    assert _change_count(wh1) == 1


def test_a_packed_order_is_locked_and_its_events_are_in_time_order(wh1: RunningCloud) -> None:
    wh1.ingest(order("LOCK-1"))
    agent = wh1.enroll("WH1")
    identity = authenticate_agent(wh1.store, agent.credential)
    now_ms = int(time.time() * 1000)
    outcome = apply_events(
        wh1.store,
        identity,
        [
            IncomingEvent("e-2", "label_printed", "LOCK-1", "S1", now_ms + 10, b'{"job_id": "j1"}', 2),
            IncomingEvent("e-1", "order_packed", "LOCK-1", "S1", now_ms, b'{"weight_g": 1234}', 1),
        ],
    )
    assert sorted(outcome.acked) == ["e-1", "e-2"]
    assert outcome.rejected == []
    same = wh1.ingest(order("LOCK-1"))
    assert same == {"accepted": ["LOCK-1"], "errors": []}
    changed = wh1.ingest(order("LOCK-1", expected_weight_g=99))
    assert changed["accepted"] == []
    assert changed["errors"][0]["code"] == "order_locked"
    assert "labelled" in changed["errors"][0]["message"]
    got = wh1.api.get("/api/v1/orders/LOCK-1").json()
    assert got["state"] == "labelled"
    assert got["expected_weight_g"] == 1200
    assert [e["event_id"] for e in got["events"]] == ["e-1", "e-2"]
    first = got["events"][0]
    assert first["kind"] == "order_packed"
    assert first["source"] == "edge"
    assert first["station"] == "S1"
    assert first["agent"] == agent.agent_id
    assert first["body"] == {"weight_g": 1234}
    assert set(first) >= {"event_id", "kind", "source", "station", "occurred_at", "received_at", "body"}


def test_bulk_insert_keeps_utc_and_refuses_naive_timestamps(store: CloudStore) -> None:
    """schema.insert_rows (COPY on PostgreSQL, executemany on SQLite) keeps UtcDateTime's rules."""
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    with store.write() as tx:
        tenant = tx.conn.execute(select(schema.tenants.c.id)).scalar_one()
        schema.insert_rows(
            tx.conn,
            schema.changes,
            [
                {
                    "revision": 10_000 + n,
                    "tenant_id": tenant,
                    "warehouse_id": None,
                    "kind": "order",
                    "key": f"K-{n}",
                    "deleted": n == 1,
                    "body": "" if n == 1 else '{"a":"\\\\ \\t é"}',
                    "recorded_at": at,
                }
                for n in range(3)
            ],
        )
    with store.read() as conn:
        # Compared in SQL, so the stored form must be exactly what the column type writes.
        rows = conn.execute(
            select(schema.changes)
            .where(schema.changes.c.revision >= 10_000, schema.changes.c.recorded_at == at)
            .order_by(schema.changes.c.revision)
        ).all()
    assert [(r.key, r.deleted, r.body, r.recorded_at) for r in rows] == [
        ("K-0", False, '{"a":"\\\\ \\t é"}', at),
        ("K-1", True, "", at),
        ("K-2", False, '{"a":"\\\\ \\t é"}', at),
    ]
    naive = {
        "revision": 20_000,
        "tenant_id": tenant,
        "warehouse_id": None,
        "kind": "order",
        "key": "naive",
        "deleted": False,
        "body": "{}",
        "recorded_at": datetime(2026, 3, 1, 12, 30),
    }
    with pytest.raises((ValueError, StatementError), match="timezone-aware"), store.write() as tx:
        schema.insert_rows(tx.conn, schema.changes, [naive])
