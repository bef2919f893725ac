"""Packers of a warehouse over the real admin API (SQLite and PostgreSQL): hashes, not PINs; badges
unique; hostile input refused; every write audited and synced to the warehouse's agents only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from argon2 import PasswordHasher

from cloud.access.principals import Role, create_api_token
from cloud.storage import schema
from tests.cloud.conftest import RunningCloud


def _create(cloud: RunningCloud, body: dict[str, Any], wh: str = "WH1") -> Any:
    return cloud.api.post(f"/api/v1/warehouses/{wh}/packers", json=body)


def _until_snapshot_end(stream: Any) -> list[Any]:
    items = []
    for item in stream:
        items.append(item)
        if item.WhichOneof("item") == "snapshot_end":
            break
    stream.cancel()
    return items


def _next_change(stream: Any) -> Any:
    for item in stream:
        if item.WhichOneof("item") == "change":
            return item.change
    raise AssertionError("the stream ended without a change")


@pytest.fixture
def wh1(cloud: RunningCloud) -> RunningCloud:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    return cloud


def test_a_packer_is_created_listed_and_its_pin_kept_only_as_a_hash(wh1: RunningCloud) -> None:
    answer = _create(wh1, {"name": "  Ana Li ", "badge": "B-0001", "pin": "4821"})
    assert answer.status_code == 201, answer.text
    packer = answer.json()
    assert {k: packer[k] for k in ("warehouse", "name", "badge", "has_pin", "disabled")} == {
        "warehouse": "WH1",
        "name": "Ana Li",
        "badge": "B-0001",
        "has_pin": True,
        "disabled": False,
    }
    assert "4821" not in answer.text
    assert "pin_hash" not in answer.text
    listed = wh1.api.get("/api/v1/warehouses/WH1/packers").json()["packers"]
    assert [p["id"] for p in listed] == [packer["id"]]
    assert wh1.api.get("/api/v1/warehouses/WH2/packers").json() == {"packers": []}
    with wh1.store.read() as conn:
        stored = conn.execute(schema.packers.select()).one()
    assert stored.pin_hash.startswith("$argon2id$")
    assert "4821" not in stored.pin_hash
    assert PasswordHasher().verify(stored.pin_hash, "4821")
    entries = wh1.api.get("/api/v1/audit").json()["entries"]
    created = next(e for e in entries if e["action"] == "create_packer")
    assert created["object_key"] == f"WH1/{packer['id']}"
    assert created["warehouse"] == "WH1"
    assert "4821" not in json.dumps(entries)
    assert "argon2" not in json.dumps(entries)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x" * 101, "badge": "B1"}, "invalid_input"),
        ({"name": "Ana\x07", "badge": "B1"}, "invalid_input"),
        ({"name": "", "badge": "B1"}, "invalid_input"),
        ({"name": "Ana", "badge": "B" * 65}, "invalid_input"),
        ({"name": "Ana", "badge": "B 1"}, "invalid_input"),
        ({"name": "Ana", "badge": "B\x1d1"}, "invalid_input"),
        ({"name": "Ana", "pin": "123"}, "invalid_input"),
        ({"name": "Ana", "pin": "123456789"}, "invalid_input"),
        ({"name": "Ana", "pin": "12a4"}, "invalid_input"),
        ({"name": "Ana", "pin": 1234}, "invalid_input"),
        ({"name": "Ana"}, "invalid_input"),
        ({"name": "Ana", "badge": "B1", "role": "admin"}, "invalid_input"),
    ],
)
def test_hostile_packers_are_refused_and_nothing_is_stored(
    wh1: RunningCloud, body: dict[str, Any], code: str
) -> None:
    before = wh1.store.current_revision()
    answer = _create(wh1, body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == code
    assert wh1.api.get("/api/v1/warehouses/WH1/packers").json() == {"packers": []}
    assert wh1.store.current_revision() == before


def test_a_badge_or_pin_is_one_packers_in_a_warehouse_not_across_warehouses(wh1: RunningCloud) -> None:
    assert _create(wh1, {"name": "Ana", "badge": "B1", "pin": "1111"}).status_code == 201
    taken = _create(wh1, {"name": "Bo", "badge": "B1"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "badge_taken"
    same_pin = _create(wh1, {"name": "Bo", "pin": "1111"})
    assert same_pin.status_code == 409
    assert same_pin.json()["error"]["code"] == "pin_taken"
    assert _create(wh1, {"name": "Bo", "badge": "B1", "pin": "1111"}, wh="WH2").status_code == 201
    missing = _create(wh1, {"name": "Bo", "badge": "B1"}, wh="WH9")
    assert missing.status_code == 404


def test_patch_renames_rebadges_repins_and_disables(wh1: RunningCloud) -> None:
    ana = _create(wh1, {"name": "Ana", "badge": "B1", "pin": "1111"}).json()
    bo = _create(wh1, {"name": "Bo", "badge": "B2"}).json()
    path = f"/api/v1/warehouses/WH1/packers/{ana['id']}"
    renamed = wh1.api.patch(path, json={"name": "Ana María", "badge": "B9", "pin": "22334455"})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["badge"]) == ("Ana María", "B9")
    clash = wh1.api.patch(f"/api/v1/warehouses/WH1/packers/{bo['id']}", json={"badge": "B9"})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "badge_taken"
    pin_clash = wh1.api.patch(f"/api/v1/warehouses/WH1/packers/{bo['id']}", json={"pin": "22334455"})
    assert pin_clash.json()["error"]["code"] == "pin_taken"
    bare = wh1.api.patch(f"/api/v1/warehouses/WH1/packers/{bo['id']}", json={"badge": None})
    assert bare.status_code == 422  # no badge and no PIN left: no way to sign in
    assert wh1.api.patch(path, json={"name": None}).status_code == 422
    assert wh1.api.patch(path, json={"pin": "1"}).status_code == 422
    disabled = wh1.api.patch(path, json={"disabled": True})
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    # A disabled packer's PIN is free again.
    assert (
        wh1.api.patch(f"/api/v1/warehouses/WH1/packers/{bo['id']}", json={"pin": "22334455"}).status_code
        == 200
    )
    assert wh1.api.patch("/api/v1/warehouses/WH1/packers/999", json={"name": "X"}).status_code == 404
    assert wh1.api.patch(f"/api/v1/warehouses/WH2/packers/{ana['id']}", json={"name": "X"}).status_code == 404
    actions = [e["action"] for e in wh1.api.get("/api/v1/audit").json()["entries"]]
    assert actions.count("update_packer") == 3


def test_packers_reach_their_warehouses_agents_as_hashes_and_leave_when_disabled(wh1: RunningCloud) -> None:
    ana = _create(wh1, {"name": "Ana", "badge": "B1", "pin": "1111"}).json()
    _create(wh1, {"name": "Other", "badge": "B1"}, wh="WH2")
    agent = wh1.enroll("WH1")
    items = _until_snapshot_end(agent.watch(0))
    packers = [
        item.change for item in items if item.WhichOneof("item") == "change" and item.change.kind == "packer"
    ]
    assert [c.key for c in packers] == [str(ana["id"])]
    body = json.loads(packers[0].body)
    assert set(body) == {"id", "name", "badge", "pin_hash"}
    assert body["id"] == ana["id"]
    assert PasswordHasher().verify(body["pin_hash"], "1111")
    stream = agent.watch(wh1.store.current_revision())
    wh1.api.patch(f"/api/v1/warehouses/WH2/packers/{ana['id'] + 1}", json={"name": "Elsewhere"})
    wh1.api.patch(f"/api/v1/warehouses/WH1/packers/{ana['id']}", json={"disabled": True})
    change = _next_change(stream)
    stream.cancel()
    assert (change.kind, change.key, change.deleted, change.body) == ("packer", str(ana["id"]), True, b"")
    items = _until_snapshot_end(agent.watch(0))
    assert not [
        item for item in items if item.WhichOneof("item") == "change" and item.change.kind == "packer"
    ]


def test_a_warehouse_scoped_editor_manages_only_its_warehouses_packers(wh1: RunningCloud) -> None:
    token = create_api_token(wh1.store, name="wh2-editor", role=Role.EDITOR, warehouses=["WH2"])
    headers = {"Authorization": f"Bearer {token}"}
    refused = wh1.api.post(
        "/api/v1/warehouses/WH1/packers", json={"name": "A", "badge": "B1"}, headers=headers
    )
    assert refused.status_code == 404
    allowed = wh1.api.post(
        "/api/v1/warehouses/WH2/packers", json={"name": "A", "badge": "B1"}, headers=headers
    )
    assert allowed.status_code == 201, allowed.text
    assert wh1.api.get("/api/v1/warehouses/WH1/packers", headers=headers).status_code == 404
