"""Labels bought from a carrier API, against the local ShipStation server: bought for the order's
parcels when it reaches its warehouse (carrier named by the OMS, or decided by the rules on the
expected weight), put on the order for its agents; voided when the order is cancelled or the parcel
voided (POST .../parcels/{n}/void, also for OMS and edge labels); failures decided by type, with
bounded retries; a packed weight out of tolerance buys the label again and asks for a reprint."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from cloud.shipping.carrier_api import CarrierApi
from cloud.shipping.carrier_calls import MAX_ATTEMPTS
from cloud.shipping.labels_bought import run_labels_bought, run_round
from cloud.shipping.shipstation import BASE_URL_ENV, ShipStationApi
from cloud.storage import schema
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order
from tests.cloud.shipping.shipstation_server import API_KEY, ShipStationServer
from tests.cloud.shipping.shipstation_server import shipstation_server as shipstation_server

SHIP_FROM = {"name": "Dock 1", "street": "1 Quay", "city": "Harbor", "postal_code": "02110", "country": "US"}
RULES = {
    "default": {"carrier": "POST", "service": "standard", "template": "shipping-4x6"},
    "rules": [
        {
            "name": "heavy by API",
            "when": "weight_g > 2000",
            "then": {"carrier": "SS", "service": "ups_ground", "weight_tolerance_g": 100},
        }
    ],
}


@pytest.fixture
def setup(
    cloud: RunningCloud, shipstation_server: ShipStationServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    # The API's own calls (a void from POST .../void) find the local server as the cloud would.
    monkeypatch.setenv(BASE_URL_ENV, shipstation_server.url)
    response = cloud.api.post(
        "/api/v1/warehouses", json={"code": "WH1", "name": "Main", "ship_from": SHIP_FROM}
    )
    assert response.status_code == 201, response.text
    carrier = {
        "code": "SS",
        "name": "UPS via ShipStation",
        "tracking": {"kind": "api", "adapter": "shipstation", "secret": API_KEY},
    }
    assert cloud.api.post("/api/v1/carriers", json=carrier).status_code == 201
    shipstation_server.tracking = [f"1ZTEST{n:012d}" for n in range(1, 50)]

    def factory(adapter: str, secret: str) -> CarrierApi:
        assert adapter == "shipstation"
        return ShipStationApi(secret, base_url=shipstation_server.url, timeout_s=5)

    return factory


def _activate(cloud: RunningCloud) -> None:
    """The rules active for the tenant (publishing also needs its templates: not this test's subject)."""
    assert cloud.api.post("/api/v1/rulesets/default/versions", json=RULES).status_code == 201
    with cloud.store.write() as tx:
        tx.conn.execute(schema.ruleset_versions.update().values(active=True, published_at=tx.now))


def _body(cloud: RunningCloud, ref: str) -> dict[str, Any]:
    with cloud.store.read() as conn:
        text = conn.execute(select(schema.orders.c.body).where(schema.orders.c.order_ref == ref)).scalar_one()
    return dict(json.loads(text))


def _last_change(cloud: RunningCloud, ref: str) -> dict[str, Any]:
    table = schema.changes
    with cloud.store.read() as conn:
        text = conn.execute(
            select(table.c.body)
            .where(table.c.kind == "order", table.c.key == ref)
            .order_by(table.c.revision.desc())
            .limit(1)
        ).scalar_one()
    return dict(json.loads(text))


def _exceptions(cloud: RunningCloud, kind: str) -> list[Any]:
    table = schema.order_exceptions
    with cloud.store.read() as conn:
        return list(conn.execute(select(table).where(table.c.kind == kind).order_by(table.c.id)))


def _named(weight: int, **extra: Any) -> dict[str, Any]:
    return {"expected_weight_g": weight, "carrier": "SS", "service": "ups_ground", **extra}


def test_labels_are_bought_put_on_the_order_and_voided_on_cancel(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    _activate(cloud)
    cloud.ingest(
        order("A-1", parcels=[_named(900), _named(1100)]),
        order("R-1", expected_weight_g=2500),  # the rules pick the api carrier
        order("L-1", expected_weight_g=500),  # the rules pick POST: nothing to buy
        order("O-1", parcels=[{"expected_weight_g": 900, "tracking_number": "OMS1", "carrier": "SS"}]),
        order("C-1", parcels=[_named(700)]),
    )
    counts = run_round(cloud.store, factory=setup)
    assert counts["bought"] == 4, counts
    assert shipstation_server.problems == []
    body = _body(cloud, "A-1")
    assert [p["tracking_number"] for p in body["parcels"]] == ["1ZTEST000000000001", "1ZTEST000000000002"]
    assert body["parcels"][0]["label"]["format"] == "zpl"
    synced = _last_change(cloud, "A-1")
    assert synced["parcels"][1]["tracking_number"] == "1ZTEST000000000002", "agents receive the label"
    rules_bought = _body(cloud, "R-1")["parcels"]
    assert rules_bought[0]["carrier"] == "SS"
    assert rules_bought[0]["service"] == "ups_ground"
    posts = [r for r in shipstation_server.requests if r["method"] == "POST"]
    weights = sorted(json.loads(r["body"])["shipment"]["packages"][0]["weight"]["value"] for r in posts)
    assert weights == [700, 900, 1100, 2500]
    assert _body(cloud, "L-1")["parcels"] == []
    assert _body(cloud, "O-1")["parcels"][0]["tracking_number"] == "OMS1", "the OMS's label stands"
    timeline = cloud.api.get("/api/v1/orders/A-1/timeline").json()
    assert [e["kind"] for e in timeline["timeline"]].count("label_bought") == 2

    # Nothing more to buy: a second round buys nothing.
    assert run_round(cloud.store, factory=setup)["bought"] == 0
    assert len([r for r in shipstation_server.requests if r["method"] == "POST"]) == 4

    # Cancelled: its bought label is voided at the API, once.
    assert cloud.api.post("/api/v1/orders/C-1/cancel", json={"reason": "customer"}).status_code == 200
    before = set(shipstation_server.voided)
    assert run_round(cloud.store, factory=setup)["voided"] == 1
    assert len(shipstation_server.voided - before) == 1
    assert run_round(cloud.store, factory=setup)["voided"] == 0


def test_a_void_in_the_cloud_voids_the_number_the_label_and_tells_the_agents(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    cloud.ingest(order("V-1", parcels=[_named(900), _named(1100)]), order("E-1"))
    run_round(cloud.store, factory=setup)
    revision = cloud.store.current_revision()
    answer = cloud.api.post("/api/v1/orders/V-1/parcels/1/void", json={"reason": "box crushed"})
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert done["tracking_number"] == "1ZTEST000000000001"
    assert [v["outcome"] for v in done["carrier_voids"]] == ["voided"]
    assert len(shipstation_server.voided) == 1
    synced = _last_change(cloud, "V-1")
    assert synced["voided_parcels"] == [{"parcel": 1, "tracking_number": "1ZTEST000000000001"}]
    assert synced["parcels"][0].get("label") is None, "the voided label never prints again"
    assert synced["parcels"][1]["label"] is not None
    with cloud.store.read() as conn:
        numbers = conn.execute(
            select(schema.tracking_numbers.c.tracking_number, schema.tracking_numbers.c.state)
        ).all()
    assert [tuple(n) for n in numbers] == [("1ZTEST000000000001", "voided")]
    assert cloud.store.current_revision() > revision
    # Voided again: nothing changes, nothing is voided at the API twice.
    again = cloud.api.post("/api/v1/orders/V-1/parcels/1/void", json={"reason": "box crushed"})
    assert again.status_code == 200
    assert again.json()["changed"] is False
    # The next round buys parcel 1 a new label (relabel), with a new number.
    assert run_round(cloud.store, factory=setup)["bought"] == 1
    assert _body(cloud, "V-1")["parcels"][0]["tracking_number"] == "1ZTEST000000000003"
    relabelled = _last_change(cloud, "V-1")
    assert relabelled["parcels"][0]["tracking_number"] == "1ZTEST000000000003"
    assert relabelled["voided_parcels"] == [], "parcel 1 has a live label again: the agent prints it"
    with cloud.store.read() as conn:
        actions = conn.execute(select(schema.audit_log.c.action)).scalars().all()
    assert actions.count("void_parcel") == 1, "audited once (the second void changed nothing)"

    # A later NUMBER_USED of the voided number opens number_reused.
    agent = cloud.enroll("WH1")
    reused = sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind="number_used",
        order_ref="E-1",
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(
            {
                "lease_id": 1,
                "carrier": "SS",
                "serial": 1,
                "tracking_number": "1ZTEST000000000001",
                "job_id": "job-x",
                "parcel": 1,
            }
        ).encode(),
        sequence=1,
    )
    agent.push(reused)
    assert _exceptions(cloud, "number_reused"), "a voided number used again is an exception"


def test_hostile_voids_are_refused_and_change_nothing(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    cloud.ingest(order("H-1", parcels=[_named(900)]), order("N-1"))
    run_round(cloud.store, factory=setup)
    revision = cloud.store.current_revision()
    refused = [
        ("/api/v1/orders/H-1/parcels/1/void", {}, 422),
        ("/api/v1/orders/H-1/parcels/1/void", {"reason": ""}, 422),
        ("/api/v1/orders/H-1/parcels/1/void", {"reason": "x" * 501}, 422),
        ("/api/v1/orders/H-1/parcels/1/void", {"reason": "a\x00b"}, 422),
        ("/api/v1/orders/H-1/parcels/1/void", {"reason": "ok", "extra": 1}, 422),
        ("/api/v1/orders/H-1/parcels/1/void", ["reason"], 422),
        ("/api/v1/orders/H-1/parcels/0/void", {"reason": "ok"}, 422),
        ("/api/v1/orders/H-1/parcels/100/void", {"reason": "ok"}, 422),
        ("/api/v1/orders/NOPE/parcels/1/void", {"reason": "ok"}, 404),
        ("/api/v1/orders/N-1/parcels/1/void", {"reason": "ok"}, 404),  # nothing printed, nothing sent
        ("/api/v1/orders/H-1/parcels/2/void", {"reason": "ok"}, 404),
    ]
    for path, body, status in refused:
        answer = cloud.api.post(path, json=body)
        assert answer.status_code == status, (path, body, answer.text)
        assert answer.json()["error"]["message"]
    assert cloud.store.current_revision() == revision
    assert shipstation_server.voided == set()
    # A parcel on a manifest cannot be voided here.
    with cloud.store.write() as tx:
        tx.conn.execute(
            schema.parcels.update()
            .where(schema.parcels.c.order_ref == "H-1")
            .values(state="manifested", tracking_number="1ZTEST000000000001")
        )
    answer = cloud.api.post("/api/v1/orders/H-1/parcels/1/void", json={"reason": "ok"})
    assert answer.status_code == 409, answer.text
    assert "manifested" in answer.json()["error"]["message"]


def test_failures_are_decided_by_type_with_bounded_retries(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    cloud.ingest(order("F-1", parcels=[_named(900)]))
    # 429: the API may answer later; tried each round up to MAX_ATTEMPTS, then a person is asked.
    shipstation_server.mode = "rate_limited"
    for _ in range(MAX_ATTEMPTS + 2):
        run_round(cloud.store, factory=setup)
    posts = [r for r in shipstation_server.requests if r["method"] == "POST"]
    assert len(posts) == MAX_ATTEMPTS
    (failed,) = _exceptions(cloud, "label_purchase_failed")
    assert "5 attempt(s)" in failed.message

    # 500 on a create: a label may have been bought: never bought again, a person looks.
    cloud.ingest(order("F-2", parcels=[_named(900)]))
    shipstation_server.mode = "status_500"
    run_round(cloud.store, factory=setup)
    run_round(cloud.store, factory=setup)
    posts = [r for r in shipstation_server.requests if r["method"] == "POST"]
    assert len(posts) == MAX_ATTEMPTS + 1
    messages = [row.message for row in _exceptions(cloud, "label_purchase_failed")]
    assert any("may have been bought" in message for message in messages)

    # Refused (a bad address): no retry.
    cloud.ingest(order("F-3", parcels=[_named(900)]))
    shipstation_server.mode = "refuse_address"
    run_round(cloud.store, factory=setup)
    run_round(cloud.store, factory=setup)
    assert len([r for r in shipstation_server.requests if r["method"] == "POST"]) == MAX_ATTEMPTS + 2
    assert len(_exceptions(cloud, "label_purchase_failed")) == 3
    assert _body(cloud, "F-3")["parcels"][0].get("label") is None


def test_a_packed_weight_out_of_tolerance_buys_the_label_again(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    _activate(cloud)
    cloud.ingest(order("W-1", expected_weight_g=2500))
    run_round(cloud.store, factory=setup)
    first = _body(cloud, "W-1")["parcels"][0]["tracking_number"]
    agent = cloud.enroll("WH1")

    def event(kind: str, sequence: int, **body: Any) -> sync_pb2.EdgeEvent:
        return sync_pb2.EdgeEvent(
            event_id=str(uuid.uuid4()),
            kind=kind,
            order_ref="W-1",
            station="S1",
            occurred_at_ms=int(time.time() * 1000),
            body=json.dumps(body).encode(),
            sequence=sequence,
        )

    common = {"parcel": 1, "document": "shipping_label", "tracking_number": first, "carrier": "SS"}
    answer = agent.push(
        event("label_printed", 1, job_id="j1", weight_g=2900, **common),
        event("order_packed", 2, job_id="j1", weight_g=2900, **common),
    )
    assert len(answer.acked) == 2, answer
    assert _exceptions(cloud, "weight_out_of_tolerance")
    counts = run_round(cloud.store, factory=setup)
    assert counts["relabelled"] == 1, counts
    body = _body(cloud, "W-1")
    assert body["parcels"][0]["tracking_number"] != first
    posts = [json.loads(r["body"]) for r in shipstation_server.requests if r["method"] == "POST"]
    assert posts[-1]["shipment"]["packages"][0]["weight"]["value"] == 2900
    assert len(shipstation_server.voided) == 1, "the old label is voided"
    (reprint,) = _exceptions(cloud, "label_reprint_needed")
    assert "reprint parcel 1" in reprint.message
    assert run_round(cloud.store, factory=setup)["relabelled"] == 0, "once"


def test_an_agents_void_voids_the_number_and_the_bought_label_and_a_new_one_is_bought(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    cloud.ingest(order("G-1", parcels=[_named(900)]))
    run_round(cloud.store, factory=setup)
    first = _body(cloud, "G-1")["parcels"][0]["tracking_number"]
    agent = cloud.enroll("WH1")

    def event(kind: str, sequence: int, **body: Any) -> sync_pb2.EdgeEvent:
        return sync_pb2.EdgeEvent(
            event_id=str(uuid.uuid4()),
            kind=kind,
            order_ref="G-1",
            station="S1",
            occurred_at_ms=int(time.time() * 1000),
            body=json.dumps(body).encode(),
            sequence=sequence,
        )

    printed = event(
        "label_printed",
        1,
        job_id="j1",
        parcel=1,
        document="shipping_label",
        tracking_number=first,
        carrier="SS",
        weight_g=900,
    )
    voided = event("parcel_voided", 2, parcel=1, tracking_number=first, reason="label smudged")
    assert len(agent.push(printed, voided).acked) == 2
    assert cloud.api.get("/api/v1/orders/G-1").json()["state"] == "labelled"
    with cloud.store.read() as conn:
        numbers = conn.execute(
            select(schema.tracking_numbers.c.tracking_number, schema.tracking_numbers.c.state)
        ).all()
    assert [tuple(n) for n in numbers] == [(first, "voided")]
    assert shipstation_server.voided == set(), "no network call inside the event batch"
    counts = run_round(cloud.store, factory=setup)
    assert counts["voided"] == 1, counts
    assert counts["bought"] == 1, "the parcel past release gets a new label for its relabel"
    assert len(shipstation_server.voided) == 1
    assert _body(cloud, "G-1")["parcels"][0]["tracking_number"] not in ("", first)
    assert run_round(cloud.store, factory=setup) == {"bought": 0, "voided": 0, "relabelled": 0, "failed": 0}


def test_the_background_task_buys_with_the_configured_api_and_stops(
    cloud: RunningCloud, shipstation_server: ShipStationServer, setup: Any
) -> None:
    cloud.ingest(order("T-1", parcels=[_named(900)]))

    async def main() -> None:
        stop = asyncio.Event()
        # The default adapter: ShipStation at $DOCKSIDE_SHIPSTATION_URL (the local server here).
        task = asyncio.create_task(run_labels_bought(cloud.store, stop, interval_s=0.05))
        for _ in range(200):
            if _body(cloud, "T-1")["parcels"][0].get("tracking_number"):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert _body(cloud, "T-1")["parcels"][0]["tracking_number"].startswith("1ZTEST")
    assert shipstation_server.problems == []
