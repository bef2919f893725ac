"""Carrier accounts over the real HTTP API: each tracking kind, its sync body, its sealed secret,
and hostile bodies refused with nothing changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from cloud.shipping.carriers import CarrierIn, api_secret, put_carrier
from cloud.storage import schema, sealed_secrets
from cloud.storage.store import CloudStore
from dockside.shipping.sscc import sscc18
from dockside.shipping.tracking import NumberFormat, format_number
from dockside.sync import ChangeKind
from tests.cloud.conftest import RunningCloud

S10 = {"scheme": "mod11", "prefix": "RR", "suffix": "US", "digits": 8}
SECRET = "TEST_sk_live_7f3a9c0e41b2"


def _changes(cloud: RunningCloud, kind: str) -> list[tuple[str, Any, dict[str, Any]]]:
    table = schema.changes
    with cloud.store.read() as conn:
        rows = conn.execute(
            select(table.c.key, table.c.warehouse_id, table.c.body)
            .where(table.c.kind == kind)
            .order_by(table.c.revision)
        ).all()
    return [(row.key, row.warehouse_id, json.loads(row.body)) for row in rows]


def test_each_tracking_kind_is_created_listed_and_synced_to_every_warehouse(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    bodies = [
        {"code": "POST", "name": "Royal Post", "tracking": {"kind": "range", "format": S10}, "low_water": 50},
        {"code": "OMS", "name": "From the OMS", "tracking": {"kind": "oms"}},
        {
            "code": "B2B",
            "name": "Pallets",
            "tracking": {"kind": "sscc", "company_prefix": "0614141", "extension": 3},
        },
        {
            "code": "SS",
            "name": "ShipStation",
            "tracking": {"kind": "api", "adapter": "shipstation", "secret": SECRET},
        },
    ]
    for body in bodies:
        response = cloud.api.post("/api/v1/carriers", json=body)
        assert response.status_code == 201, response.text
    listed = cloud.api.get("/api/v1/carriers").json()["carriers"]
    assert [c["code"] for c in listed] == ["B2B", "OMS", "POST", "SS"]
    post = cloud.api.get("/api/v1/carriers/POST").json()
    assert post["tracking"] == {"kind": "range", "scheme": S10}
    assert post["low_water"] == 50
    assert post["block_size"] == 200
    assert post["free_numbers"] == 0
    b2b = cloud.api.get("/api/v1/carriers/B2B").json()
    # Every serial of a 7-digit prefix (16 - 7 = 9 digits) but 0 is free for SSCCs.
    assert b2b["free_numbers"] == 10**9 - 1
    assert b2b["tracking"]["scheme"]["company_prefix"] == "0614141"
    # The SSCC carrier's one range numbers exactly the SSCC-18s, with GS1 check digits.
    ranges = cloud.api.get("/api/v1/carriers/B2B/ranges").json()["ranges"]
    assert len(ranges) == 1
    assert ranges[0]["first_number"] == sscc18("0614141", 3, 1)
    # GS1 mod 10 worked by hand: 3,0,6,1,4,1,4,1,9x9 weighted 3,1 from the right sum to 225 -> 5.
    assert ranges[0]["last_number"] == "306141419999999995"
    # GS1's own published SSCC example, (00) 1 0614141 234567890 8, from the same format.
    fmt = NumberFormat.model_validate(b2b["tracking"]["scheme"]["format"] | {"prefix": "10614141"})
    assert format_number(fmt, 234567890) == "106141412345678908"
    # One CARRIER change per write, for every warehouse (warehouse NULL), never holding a secret.
    changes = _changes(cloud, ChangeKind.CARRIER.value)
    assert [key for key, _wh, _body in changes] == ["POST", "OMS", "B2B", "SS"]
    assert all(wh is None for _key, wh, _body in changes)
    assert changes[0][2] == {
        "code": "POST",
        "name": "Royal Post",
        "tracking": {"kind": "range", "scheme": S10},
        "low_water": 50,
    }
    assert changes[3][2]["tracking"] == {"kind": "api", "scheme": {"adapter": "shipstation"}}
    # Audited, one entry per write.
    audit = cloud.api.get("/api/v1/audit", params={"object_kind": "carrier"}).json()["entries"]
    assert sorted(entry["object_key"] for entry in audit) == ["B2B", "OMS", "POST", "SS"]


def test_an_api_carriers_secret_is_sealed_and_never_shown_synced_or_audited(cloud: RunningCloud) -> None:
    body = {
        "code": "SS",
        "name": "ShipStation",
        "tracking": {"kind": "api", "adapter": "shipstation", "secret": SECRET},
    }
    created = cloud.api.post("/api/v1/carriers", json=body)
    assert created.status_code == 201
    again = cloud.api.post("/api/v1/carriers", json={**body, "name": "ShipStation US"})
    assert again.status_code == 200
    assert again.json()["name"] == "ShipStation US"
    for text in (
        created.text,
        again.text,
        cloud.api.get("/api/v1/carriers").text,
        cloud.api.get("/api/v1/carriers/SS").text,
    ):
        assert SECRET not in text
    assert cloud.api.get("/api/v1/carriers/SS").json()["secret_set"] is True
    with cloud.store.read() as conn:
        stored = conn.execute(select(schema.carriers.c.secret)).scalar_one()
        changes = conn.execute(select(schema.changes.c.body)).scalars().all()
        audit = conn.execute(select(schema.audit_log.c.before, schema.audit_log.c.after)).all()
    assert stored.startswith("fernet:")
    assert SECRET not in stored
    assert not any(SECRET in change for change in changes)
    assert not any(SECRET in (row.before or "") + (row.after or "") for row in audit)
    # Only the carrier's adapter opens it.
    with cloud.store.read() as conn:
        assert api_secret(conn, cloud.store.tenant_id(), "SS") == ("shipstation", SECRET)


def test_a_carriers_numbering_cannot_change_once_it_has_ranges(cloud: RunningCloud) -> None:
    body = {"code": "POST", "name": "Post", "tracking": {"kind": "range", "format": S10}}
    assert cloud.api.post("/api/v1/carriers", json=body).status_code == 201
    # Before any range the format may still be fixed.
    assert cloud.api.post("/api/v1/carriers", json={**body, "low_water": 10}).status_code == 200
    assert cloud.api.post("/api/v1/carriers/POST/ranges", json={"first": 1, "last": 100}).status_code == 201
    changed = {**body, "tracking": {"kind": "range", "format": {**S10, "prefix": "EE"}}}
    refused = cloud.api.post("/api/v1/carriers", json=changed)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "carrier_numbers_fixed"
    assert cloud.api.get("/api/v1/carriers/POST").json()["tracking"]["scheme"]["prefix"] == "RR"
    # The name and low water may still change.
    assert cloud.api.post("/api/v1/carriers", json={**body, "name": "Post 2"}).status_code == 200


HOSTILE = [
    {},
    {"code": "X", "name": "X"},
    {"code": "X", "name": "X", "tracking": {"kind": "pigeon"}},
    {"code": "X", "name": "X", "tracking": {"kind": "oms", "secret": "s"}},
    {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "extra": 1},
    {"code": "bad code", "name": "X", "tracking": {"kind": "oms"}},
    {"code": "X" * 33, "name": "X", "tracking": {"kind": "oms"}},
    {"code": "X", "name": "a\x00b", "tracking": {"kind": "oms"}},
    {"code": "X", "name": "N" * 201, "tracking": {"kind": "oms"}},
    {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "low_water": -1},
    {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "low_water": True},
    {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "block_size": 0},
    {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "block_size": 10**9},
    {"code": "X", "name": "X", "tracking": {"kind": "range"}},
    {"code": "X", "name": "X", "tracking": {"kind": "range", "format": {**S10, "digits": 9}}},
    {"code": "X", "name": "X", "tracking": {"kind": "range", "format": {**S10, "prefix": "r r"}}},
    {"code": "X", "name": "X", "tracking": {"kind": "range", "format": {"scheme": "ups_1z", "digits": 7}}},
    {"code": "X", "name": "X", "tracking": {"kind": "sscc", "company_prefix": "123"}},
    {"code": "X", "name": "X", "tracking": {"kind": "sscc", "company_prefix": "0614141", "extension": 10}},
    {"code": "X", "name": "X", "tracking": {"kind": "sscc", "company_prefix": "06141410000"}},
    {"code": "X", "name": "X", "tracking": {"kind": "api", "adapter": "shipstation"}},
    {"code": "X", "name": "X", "tracking": {"kind": "api", "adapter": "Ship Station", "secret": "k"}},
    {"code": "X", "name": "X", "tracking": {"kind": "api", "adapter": "ss", "secret": "k" * 501}},
    {"code": "X", "name": "X", "tracking": {"kind": "api", "adapter": "ss", "secret": "line\nbreak"}},
    [1, 2, 3],
    "carrier",
]


def test_a_hostile_carrier_is_refused_and_changes_nothing(cloud: RunningCloud) -> None:
    before = cloud.store.current_revision()
    for body in HOSTILE:
        response = cloud.api.post("/api/v1/carriers", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["message"]
    assert cloud.api.get("/api/v1/carriers").json() == {"carriers": []}
    assert cloud.store.current_revision() == before


def test_oversized_and_broken_bodies_are_refused(cloud: RunningCloud) -> None:
    huge = {"code": "X", "name": "X", "tracking": {"kind": "oms"}, "pad": "x" * (2 * 1024 * 1024)}
    response = cloud.api.post("/api/v1/carriers", json=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    broken = cloud.api.post(
        "/api/v1/carriers", content=b'{"code": "X", "name":', headers={"content-type": "application/json"}
    )
    assert broken.status_code in (400, 422), broken.text
    assert cloud.api.get("/api/v1/carriers").json() == {"carriers": []}


def test_an_unknown_carrier_is_404_and_a_limited_token_may_not_write_carriers(cloud: RunningCloud) -> None:
    missing = cloud.api.get("/api/v1/carriers/NOPE")
    assert missing.status_code == 404
    assert "POST /api/v1/carriers" in missing.json()["error"]["message"]
    cloud.put_warehouse("WH1")
    made = cloud.api.post("/api/v1/tokens", json={"name": "wh1", "role": "admin", "warehouses": ["WH1"]})
    assert made.status_code == 201, made.text
    limited = cloud.api.post(
        "/api/v1/carriers",
        json={"code": "X", "name": "X", "tracking": {"kind": "oms"}},
        headers={"Authorization": f"Bearer {made.json()['token']}"},
    )
    assert limited.status_code == 403
    assert "whole tenant" in limited.json()["error"]["message"]


def test_rotating_the_secret_key_reseals_carrier_api_keys(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key, new_key = sealed_secrets.new_key(), sealed_secrets.new_key()
    monkeypatch.setenv(sealed_secrets.KEY_ENV, old_key)
    store = CloudStore.open(database_url)
    try:
        tenant = store.tenant_id()
        tracking = {"kind": "api", "adapter": "shipstation", "secret": SECRET}
        put_carrier(
            store, tenant, CarrierIn.model_validate({"code": "SS", "name": "S", "tracking": tracking})
        )
        put_carrier(
            store, tenant, CarrierIn.model_validate({"code": "OMS", "name": "O", "tracking": {"kind": "oms"}})
        )
        monkeypatch.setenv(sealed_secrets.KEY_ENV, f"{new_key},{old_key}")
        assert sealed_secrets.reseal_all(store) == 1
        # With the old key gone the API key still opens: it was sealed again with the new one.
        monkeypatch.setenv(sealed_secrets.KEY_ENV, new_key)
        with store.read() as conn:
            assert api_secret(conn, tenant, "SS") == ("shipstation", SECRET)
    finally:
        store.close()
