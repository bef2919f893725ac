"""The decision center over real HTTP: ruleset versions, validation, simulation, publish and sync."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cloud.decisions import rulesets
from cloud.orders.ingest import order_sync_body
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.orders import Order
from dockside.rules import compile_ruleset, decide
from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud, order

HEAVY_TO_FREIGHT: dict[str, Any] = {
    "default": {"carrier": "POST", "service": "eco", "template": "shipping-4x6"},
    "rules": [
        {
            "name": "heavy",
            "when": "weight_g > 20000",
            "then": {"carrier": "FREIGHT", "weight_tolerance_g": 500},
        },
        {"name": "battery", "when": "'hazmat' in sku_tags", "then": {"template": "dg-4x6"}},
    ],
    "sku_tags": {"BAT-1": ["hazmat"]},
}
BASELINE: dict[str, Any] = {
    "default": HEAVY_TO_FREIGHT["default"],
    "rules": [HEAVY_TO_FREIGHT["rules"][1]],
    "sku_tags": HEAVY_TO_FREIGHT["sku_tags"],
}


def _version(cloud: RunningCloud, body: dict[str, Any], name: str = "default") -> int:
    response = cloud.api.post(f"/api/v1/rulesets/{name}/versions", json=body)
    assert response.status_code == 201, response.text
    number: int = response.json()["version"]
    return number


def _publish_template(cloud: RunningCloud, name: str, warehouses: list[str] | None = None) -> None:
    created = cloud.api.post(f"/api/v1/templates/{name}/versions", json=TEMPLATE)
    assert created.status_code == 201, created.text
    body = {"warehouses": warehouses} if warehouses is not None else None
    published = cloud.api.post(
        f"/api/v1/templates/{name}/versions/{created.json()['version']}/publish", json=body
    )
    assert published.status_code == 200, published.text


def test_a_bad_condition_is_refused_at_save_with_the_rule_and_reason(cloud: RunningCloud) -> None:
    bad = {"rules": [{"name": "ok", "when": "weight_g > 1"}, {"name": "typo", "when": "wieght_g > 20000"}]}
    response = cloud.api.post("/api/v1/rulesets/default/versions", json=bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert "rule 2 ('typo')" in error["message"]
    assert "'wieght_g', which is not a parcel fact" in error["message"]
    syntax = cloud.api.post("/api/v1/rulesets/default/versions", json={"rules": [{"when": "weight_g >>> 3"}]})
    assert syntax.status_code == 422
    assert "syntax error" in syntax.json()["error"]["message"]
    unknown_action = cloud.api.post(
        "/api/v1/rulesets/default/versions",
        json={"rules": [{"when": "weight_g > 3", "then": {"colour": "red"}}]},
    )
    assert unknown_action.status_code == 422
    assert "colour" in unknown_action.json()["error"]["message"]
    assert cloud.api.get("/api/v1/rulesets/default/versions").status_code == 404


def test_simulating_a_draft_that_moves_heavy_parcels_reports_exactly_those(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    _publish_template(cloud, "shipping-4x6")
    _publish_template(cloud, "dg-4x6")
    weights = {f"SIM-{i:02d}": 1000 + i * 1500 for i in range(30)}  # 1 kg to 44.5 kg
    battery = {"SIM-05": [{"sku": "BAT-1", "qty": 1}]}
    cloud.ingest(
        *[
            order(ref, expected_weight_g=grams, **({"lines": battery[ref]} if ref in battery else {}))
            for ref, grams in weights.items()
        ]
    )
    baseline = _version(cloud, BASELINE)
    assert cloud.api.post(f"/api/v1/rulesets/default/versions/{baseline}/publish").status_code == 200
    draft = _version(cloud, HEAVY_TO_FREIGHT)

    response = cloud.api.post(f"/api/v1/rulesets/default/versions/{draft}/simulate", json={"last": 1000})
    assert response.status_code == 200, response.text
    result = response.json()
    heavy = sorted(ref for ref, grams in weights.items() if grams > 20000)
    assert sorted(change["order_ref"] for change in result["changes"]) == heavy
    for change in result["changes"]:
        assert change["before"]["carrier"] == "POST"
        assert change["after"]["carrier"] == "FREIGHT"
        assert change["after"]["rule"] == "heavy"
        assert change["changed"] == ["carrier", "weight_tolerance_g"]
    assert result["summary"] == {
        "orders": 30,
        "changed": len(heavy),
        "carrier_changed": len(heavy),
        "service_changed": 0,
        "template_changed": 0,
        "printer_role_changed": 0,
        "weight_tolerance_changed": len(heavy),
        "active_version": baseline,
        "draft_version": draft,
    }
    # The last N means the most recent N orders.
    recent = cloud.api.post(f"/api/v1/rulesets/default/versions/{draft}/simulate", json={"last": 5}).json()
    assert recent["summary"]["orders"] == 5
    assert [c["order_ref"] for c in recent["changes"]] == [f"SIM-{i}" for i in range(25, 30)]
    # Simulation changes nothing: the baseline is still the active version.
    versions = cloud.api.get("/api/v1/rulesets/default/versions").json()["versions"]
    assert [(v["version"], v["active"]) for v in versions] == [(baseline, True), (draft, False)]


def test_publishing_syncs_the_ruleset_to_agents_and_replaces_the_active_one(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    _publish_template(cloud, "shipping-4x6")
    _publish_template(cloud, "dg-4x6")
    agent = cloud.enroll("WH1")
    first = _version(cloud, BASELINE)
    second = _version(cloud, HEAVY_TO_FREIGHT)
    after = cloud.store.current_revision()
    assert cloud.api.post(f"/api/v1/rulesets/default/versions/{first}/publish").json()["active"] is True
    published = cloud.api.post(f"/api/v1/rulesets/default/versions/{second}/publish").json()
    assert published["active"] is True
    # Publishing again is a no-op: nothing more for agents.
    assert cloud.api.post(f"/api/v1/rulesets/default/versions/{second}/publish").status_code == 200
    assert cloud.store.current_revision() == after + 2
    stream = agent.watch(after)
    try:
        changes = []
        for item in stream:
            if item.HasField("change"):
                changes.append(item.change)
                if len(changes) == 2:
                    break
    finally:
        stream.cancel()
    assert [(c.kind, c.key) for c in changes] == [("ruleset", "default"), ("ruleset", "default")]
    held = json.loads(changes[-1].body)
    assert held["version"] == second
    assert held["rules"] == HEAVY_TO_FREIGHT["rules"]
    # What the agent holds decides like the cloud's stored version.
    assert decide(order("X"), 25_000, held).carrier == "FREIGHT"
    versions = cloud.api.get("/api/v1/rulesets/default/versions").json()["versions"]
    assert [v["active"] for v in versions] == [False, True]
    # An agent enrolled later gets the active ruleset in its snapshot.
    newcomer = cloud.enroll("WH1")
    snapshot = newcomer.watch(0)
    try:
        items = []
        for item in snapshot:
            items.append(item)
            if item.HasField("snapshot_end"):
                break
    finally:
        snapshot.cancel()
    rulesets_held = [
        json.loads(i.change.body) for i in items if i.HasField("change") and i.change.kind == "ruleset"
    ]
    assert [(r["name"], r["version"]) for r in rulesets_held] == [("default", second)]
    assert cloud.api.get("/api/v1/rulesets/default/versions/9").status_code == 404


_countries = st.sampled_from(["US", "FR", "DE", "GB", "CA"])
_orders = st.builds(
    lambda ref, country, postal, service, grams, amount, skus, weight: (
        order(
            ref,
            service_level=service,
            ship_to={"name": "N", "street": "S", "city": "C", "postal_code": postal, "country": country},
            lines=[{"sku": sku, "qty": qty} for sku, qty in skus],
            expected_weight_g=grams,
            value={"amount": f"{amount / 100:.2f}", "currency": "EUR"},
        ),
        weight,
    ),
    st.text("ABCDEFGHJK0123456789", min_size=1, max_size=12),
    _countries,
    st.one_of(st.from_regex(r"\A[0-9]{5}\Z"), st.sampled_from(["75001", "75011", "69001"])),
    st.sampled_from(["standard", "express", "economy"]),
    st.integers(0, 60_000),
    st.integers(0, 500_000),
    st.lists(
        st.tuples(st.sampled_from(["BAT-1", "TEE-1", "MUG-2"]), st.integers(1, 5)), min_size=1, max_size=4
    ),
    st.integers(0, 60_000),
)
PARITY_RULESET: dict[str, Any] = {
    "default": {"carrier": "POST", "service": "eco", "template": "shipping-4x6"},
    "rules": [
        {"name": "heavy", "when": "weight_kg > 30", "then": {"carrier": "FREIGHT"}},
        {"name": "dg", "when": "'hazmat' in sku_tags and country != 'US'", "then": {"template": "dg-4x6"}},
        {"name": "paris", "when": "country == 'FR' and postal_code =~ '^75'", "then": {"service": "express"}},
        {"name": "rich", "when": "value > 1500 and units >= 3", "then": {"carrier": "SECURE"}},
        {"name": "express", "when": "service_level == 'express'", "then": {"printer_role": "express"}},
        {"name": "off", "when": "weight_g > expected_weight_g + 5000", "then": {"weight_tolerance_g": 0}},
    ],
    "sku_tags": {"BAT-1": ["hazmat"]},
}


def test_the_cloud_and_the_edge_decide_alike_for_generated_orders(tmp_path: Path) -> None:
    store = CloudStore.open(f"sqlite:///{tmp_path / 'cloud.db'}")
    try:
        tenant = store.tenant_id()
        created = rulesets.create_ruleset_version(store, tenant, "default", PARITY_RULESET)
        rulesets.publish_ruleset_version(store, tenant, "default", created["version"])
        with store.read() as conn:
            synced = conn.execute(
                select(schema.changes.c.body).where(schema.changes.c.kind == "ruleset")
            ).scalar_one()
            cloud_side = compile_ruleset(rulesets.active_ruleset(conn, tenant) or {})
    finally:
        store.close()
    edge_ruleset = json.loads(synced)  # what an agent stores from the Watch stream
    seen = {"orders": 0, "rules": set()}

    @settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_orders, min_size=50, max_size=50))
    def check(batch: list[tuple[dict[str, Any], int]]) -> None:
        for body, weight in batch:
            canonical = Order.model_validate(body).model_dump_json()  # as the cloud stores it
            in_cloud = cloud_side.decide(json.loads(canonical), weight)
            at_edge = decide(json.loads(order_sync_body(canonical, "released")), weight, edge_ruleset)
            assert in_cloud == at_edge, body
            seen["orders"] += 1
            seen["rules"].add(in_cloud.rule)

    check()
    assert seen["orders"] >= 3000
    # The generated orders reach every rule and the default, so the parity covers them all.
    assert seen["rules"] >= {None, "heavy", "dg", "paris", "rich", "express"}


def _station(code: str, *roles: str) -> dict[str, Any]:
    printers = [
        {
            "id": f"P-{role}",
            "role": role,
            "language": "zpl",
            "host": "127.0.0.1",
            "port": 9100,
            "model": "ZD421",
        }
        for role in roles
    ]
    return {**STATION, "code": code, "printers": printers}


def test_publishing_refuses_a_ruleset_naming_what_its_warehouses_lack(cloud: RunningCloud) -> None:
    for code in ("WH1", "WH2"):
        cloud.put_warehouse(code)
        put = cloud.api.post(f"/api/v1/warehouses/{code}/stations", json=_station("S1", "label"))
        assert put.status_code == 201, put.text
    _publish_template(cloud, "shipping-4x6")  # everywhere
    _publish_template(cloud, "dg-4x6", ["WH1"])  # a staged rollout: WH1 only so far
    ruleset = {
        "default": {"carrier": "POST", "template": "shipping-4x6", "printer_role": "label"},
        "rules": [
            {"name": "dg", "when": "'hazmat' in sku_tags", "then": {"template": "dg-4x6"}},
            {"name": "express", "when": "service_level == 'express'", "then": {"printer_role": "express"}},
        ],
        "sku_tags": {"BAT-1": ["hazmat"]},
    }
    version = _version(cloud, ruleset)
    before = cloud.store.current_revision()

    refused = cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/publish")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "ruleset_references_missing"
    assert "rule 1 ('dg') names template 'dg-4x6', which is not published to WH2" in error["message"]
    assert "rule 2 ('express') names printer role 'express', which station WH1/S1, WH2/S1" in error["message"]
    assert "shipping-4x6" not in error["message"]
    assert "'label'" not in error["message"]
    assert cloud.store.current_revision() == before  # nothing reached any agent
    assert [v["active"] for v in cloud.api.get("/api/v1/rulesets/default/versions").json()["versions"]] == [
        False
    ]

    _publish_template(cloud, "dg-4x6", ["WH2"])
    assert (
        cloud.api.post("/api/v1/warehouses/WH1/stations", json=_station("S1", "label", "express")).status_code
        == 200
    )
    still = cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/publish")
    assert still.status_code == 422
    message = still.json()["error"]["message"]
    assert "dg-4x6" not in message
    assert "which station WH2/S1 has no printer for" in message

    assert (
        cloud.api.post("/api/v1/warehouses/WH2/stations", json=_station("S1", "express", "label")).status_code
        == 200
    )
    published = cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["active"] is True


def test_hostile_rules_are_422s_that_name_the_rule_never_500s(cloud: RunningCloud) -> None:
    def save(when: str) -> Any:
        rules = [{"name": "fine", "when": "weight_g > 1"}, {"name": "hostile", "when": when}]
        return cloud.api.post("/api/v1/rulesets/default/versions", json={"rules": rules})

    for when, code in [
        ("not " * 490 + "city == 'x'", "rule_too_complex"),
        ("(" * 100 + "weight_g > 1" + ")" * 100, "rule_too_complex"),
        ("city =~ '(?=a)b'", "unsupported_regex"),
        ("city =~ r'(a)\\1'", "unsupported_regex"),
        ("city =~ postal_code", "unsupported_regex"),
        ("$range(100000000) == []", "unsupported_function"),
    ]:
        response = save(when)
        assert response.status_code == 422, (when[:40], response.text)
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"].startswith("rule 2 ('hostile'): ")
    too_many = cloud.api.post(
        "/api/v1/rulesets/default/versions", json={"rules": [{"when": "weight_g > 1"}] * 501}
    )
    assert too_many.status_code == 422
    text = "weight_g > 1 and " * 110 + "weight_g > 1"  # within one rule's caps, not 60 times over
    oversized = cloud.api.post("/api/v1/rulesets/default/versions", json={"rules": [{"when": text}] * 60})
    assert oversized.status_code == 422
    assert oversized.json()["error"]["code"] == "ruleset_too_large"
    # A catastrophic pattern is accepted, and deciding with it over a long city is just a match.
    cloud.put_warehouse("WH1")
    cloud.ingest(order("LONG-1", ship_to={**order("x")["ship_to"], "city": "a" * 150 + "!"}))
    version = save("city =~ '(a+)+$'").json()["version"]
    simulated = cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/simulate", json={"last": 10})
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["summary"]["orders"] == 1


def test_a_carton_label_taking_its_own_sscc_is_saved_and_its_carrier_checked_at_publish(
    cloud: RunningCloud,
) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=_station("S1", "label")).status_code == 201
    _publish_template(cloud, "shipping-4x6")
    _publish_template(cloud, "carton-4x6")
    carton = {"kind": "carton_label", "template": "carton-4x6", "carrier": "B2B"}
    ruleset: dict[str, Any] = {
        "default": {"carrier": "POST", "template": "shipping-4x6"},
        "rules": [{"name": "b2b", "when": "weight_g > 1000", "then": {"documents": [carton]}}],
    }
    version = _version(cloud, ruleset)
    saved = cloud.api.get(f"/api/v1/rulesets/default/versions/{version}").json()
    assert saved["rules"][0]["then"]["documents"] == [{**carton, "printer_role": "label"}]

    def refused(expected: str) -> None:
        response = cloud.api.post(f"/api/v1/rulesets/default/versions/{version}/publish")
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "ruleset_references_missing"
        assert expected in error["message"], error["message"]

    refused("rule 1 ('b2b'), its carton_label document names carrier 'B2B', which is not a carrier account")
    oms = {"code": "B2B", "name": "B2B", "tracking": {"kind": "oms"}}
    made = cloud.api.post("/api/v1/carriers", json=oms)
    assert made.status_code == 201, made.text
    refused("names carrier 'B2B', whose tracking kind is oms, not sscc")

    sscc = {"code": "B2BS", "name": "Pallets", "tracking": {"kind": "sscc", "company_prefix": "0614141"}}
    assert cloud.api.post("/api/v1/carriers", json=sscc).status_code == 201
    own_sscc = {"documents": [{**carton, "carrier": "B2BS"}]}
    fixed = {**ruleset, "rules": [{**ruleset["rules"][0], "then": own_sscc}]}
    good = _version(cloud, fixed)
    published = cloud.api.post(f"/api/v1/rulesets/default/versions/{good}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["rules"][0]["then"]["documents"][0]["carrier"] == "B2BS"


def test_a_documents_carrier_is_refused_off_a_carton_label_or_past_32_characters(cloud: RunningCloud) -> None:
    def save(document: dict[str, Any]) -> Any:
        return cloud.api.post(
            "/api/v1/rulesets/default/versions", json={"default": {"documents": [document]}}
        )

    slip = save({"kind": "packing_slip", "template": "slip", "carrier": "B2B"})
    assert slip.status_code == 422, slip.text
    assert "carrier is only for a carton_label" in slip.json()["error"]["message"]
    for bad in ("", "X" * 33, 5):
        response = save({"kind": "carton_label", "template": "carton", "carrier": bad})
        assert response.status_code == 422, (bad, response.text)
    assert save({"kind": "carton_label", "template": "carton", "carrier": "X" * 32}).status_code == 201
