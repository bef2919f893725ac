"""The admin API over real HTTP: auth, the error contract, warehouses, stations, tokens, templates."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from cloud.storage import schema
from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud
from tests.sockets import assert_no_delayed_ack_wait


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


def test_answers_are_not_held_back_by_delayed_acks(cloud: RunningCloud) -> None:
    """Accepted connections have TCP_NODELAY: uvicorn writes an answer's head and body apart, and
    without it each answer waited ~40 ms for the client's delayed ACK. Keep-alive still holds."""
    assert_no_delayed_ack_wait(cloud.http_address)


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "needs a bearer token"),
        ({"Authorization": "Basic abc"}, "must read 'Bearer <token>'"),
        ({"Authorization": "Bearer"}, "must read 'Bearer <token>'"),
        ({"Authorization": "Bearer dsk_not-a-real-token"}, "unknown or revoked"),
    ],
)
def test_every_call_needs_a_valid_bearer_token(
    cloud: RunningCloud, headers: dict[str, str], needle: str
) -> None:
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=10) as anonymous:
        for method, path in [
            ("POST", "/api/v1/warehouses"),
            ("GET", "/api/v1/agents"),
            ("POST", "/api/v1/orders"),
            ("GET", "/api/v1/orders/X1"),
            ("POST", "/api/v1/templates/t/versions/1/publish"),
        ]:
            response = anonymous.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            error = _error(response)
            assert error["code"] == "unauthenticated"
            assert needle in error["message"]
    # Nothing was written by the refused calls.
    assert cloud.api.get("/api/v1/warehouses").json() == {"warehouses": []}


def test_health_metrics_and_docs_need_no_token(cloud: RunningCloud) -> None:
    with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=10) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok", "revision": 0}
        cloud.api.get("/api/v1/agents")
        metrics = anonymous.get("/metrics")
        assert metrics.status_code == 200
        assert (
            'dockside_cloud_http_requests_total{method="GET",route="/api/v1/agents",status="200"}'
            in metrics.text
        )
        assert anonymous.get("/docs").status_code == 200
        spec = anonymous.get("/openapi.json").json()
        assert "/api/v1/orders" in spec["paths"]
        body_schema = spec["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
        assert body_schema["schema"]["$ref"] == "#/components/schemas/OrderBatch"
        assert "Order" in spec["components"]["schemas"]


def test_unknown_routes_methods_and_broken_json_use_the_error_shape(cloud: RunningCloud) -> None:
    missing = cloud.api.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    assert "/api/v1/nothing-here" in _error(missing)["message"]

    wrong_method = cloud.api.delete("/api/v1/warehouses")
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "method_not_allowed"

    broken = cloud.api.post(
        "/api/v1/warehouses", content=b'{"code": "WH1",', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert _error(broken)["code"] == "invalid_json"

    not_an_object = cloud.api.post("/api/v1/warehouses", json=["WH1"])
    assert not_an_object.status_code == 422
    assert _error(not_an_object)["code"] == "invalid_input"


def test_a_body_over_the_limit_is_refused_with_413(cloud: RunningCloud) -> None:
    huge = {"code": "WH1", "name": "x" * (2 * 1024 * 1024)}
    response = cloud.api.post("/api/v1/warehouses", json=huge)
    assert response.status_code == 413
    error = _error(response)
    assert error["code"] == "body_too_large"
    assert "1,048,576 bytes" in error["message"]


def test_an_unexpected_failure_is_a_logged_500_without_a_trace(cloud: RunningCloud) -> None:
    with cloud.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE agents"))
    response = cloud.api.get("/api/v1/agents")
    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "internal_error"
    assert "incident" in error["message"]
    assert "agents" not in error["message"]  # no SQL, no table names, no trace


def test_warehouse_is_created_then_replaced_and_identical_content_changes_nothing(
    cloud: RunningCloud,
) -> None:
    ship_from = {"name": "Dock 1", "street": "1 Quay", "city": "Harbor", "country": "US"}
    created = cloud.api.post(
        "/api/v1/warehouses", json={"code": "WH1", "name": "Main", "ship_from": ship_from}
    )
    assert created.status_code == 201
    assert created.json()["ship_from"]["city"] == "Harbor"
    revision = cloud.store.current_revision()

    same = cloud.api.post("/api/v1/warehouses", json={"code": "WH1", "name": "Main", "ship_from": ship_from})
    assert same.status_code == 200
    assert cloud.store.current_revision() == revision

    renamed = cloud.api.post("/api/v1/warehouses", json={"code": "WH1", "name": "Main hall"})
    assert renamed.status_code == 200
    assert renamed.json() == {
        "code": "WH1",
        "name": "Main hall",
        "ship_from": None,
        "weight_unit": "kg",
        "item_check": False,
    }
    assert cloud.store.current_revision() == revision + 1
    assert cloud.api.get("/api/v1/warehouses/WH1").json()["name"] == "Main hall"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": ""}, "code"),
        ({"code": "WH 1"}, "code"),
        ({"code": "W" * 33}, "code"),
        ({"code": "WH1", "name": "n" * 201}, "name"),
        ({"code": "WH1", "ship_from": {"name": "x"}}, "ship_from.street"),
        ({"code": "WH1", "surprise": True}, "surprise"),
    ],
)
def test_a_bad_warehouse_is_refused_naming_the_field(
    cloud: RunningCloud, body: dict[str, Any], field: str
) -> None:
    response = cloud.api.post("/api/v1/warehouses", json=body)
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "invalid_input"
    assert error["message"].startswith(field), error["message"]


def test_station_is_created_replaced_and_listed(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    created = cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION)
    assert created.status_code == 201
    assert created.json() == {**STATION, "mode": "pack"}  # a packing station unless told otherwise
    replaced = cloud.api.post("/api/v1/warehouses/WH1/stations", json={**STATION, "scale": None})
    assert replaced.status_code == 200
    stations = cloud.api.get("/api/v1/warehouses/WH1/stations").json()["stations"]
    assert stations == [{**STATION, "mode": "pack", "scale": None}]
    assert cloud.api.get("/api/v1/warehouses/WH1").json()["stations"] == stations


def test_a_station_mode_is_pack_or_dock_synced_in_its_body(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    dock = {**STATION, "code": "D1", "mode": "dock", "scale": None}
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=dock).status_code == 201
    with cloud.store.read() as conn:
        synced = conn.execute(
            select(schema.changes.c.body)
            .where(schema.changes.c.kind == "station", schema.changes.c.key == "D1")
            .order_by(schema.changes.c.revision.desc())
            .limit(1)
        ).scalar_one()
    assert json.loads(synced)["mode"] == "dock"
    for bad in ("DOCK", "ship", "", None, 1, ["dock"]):
        response = cloud.api.post("/api/v1/warehouses/WH1/stations", json={**dock, "mode": bad})
        assert response.status_code == 422, (bad, response.text)
        message = _error(response)["message"]
        assert message.startswith("mode"), message
        assert "'pack' or 'dock'" in message, message
    back = cloud.api.post("/api/v1/warehouses/WH1/stations", json={**dock, "mode": "pack"})
    assert back.status_code == 200, back.text
    listed = cloud.api.get("/api/v1/warehouses/WH1/stations").json()["stations"]
    assert [station["mode"] for station in listed] == ["pack"]


def test_a_station_saved_before_modes_reads_as_a_packing_station(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    assert cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION).status_code == 201
    with cloud.store.write() as tx:
        tx.conn.execute(schema.stations.update().values(body=json.dumps(STATION)))
    listed = cloud.api.get("/api/v1/warehouses/WH1/stations").json()["stations"]
    assert listed == [{**STATION, "mode": "pack"}]


def test_station_for_an_unknown_warehouse_is_not_found(cloud: RunningCloud) -> None:
    response = cloud.api.post("/api/v1/warehouses/NOPE/stations", json=STATION)
    assert response.status_code == 404
    assert "POST /api/v1/warehouses" in _error(response)["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"printers": [{**STATION["printers"][0], "port": 70000}]}, "printers.0.port"),  # type: ignore[index]
        ({"printers": [{**STATION["printers"][0], "language": "pcl"}]}, "printers.0.language"),  # type: ignore[index]
        ({"printers": [{**STATION["printers"][0], "host": "bad host;rm"}]}, "printers.0.host"),  # type: ignore[index]
        ({"printers": [STATION["printers"][0], STATION["printers"][0]]}, "printer ids must be unique"),  # type: ignore[index]
        ({"printers": [STATION["printers"][0]] * 17}, "printers"),  # type: ignore[index]
        ({"scale": {"protocol": "mt-sics", "port": "/dev/pts/3", "baudrate": 12345}}, "scale.baudrate"),
        ({"scale": {"protocol": "mt-sics", "port": "/dev/\x00pts"}}, "scale.port"),
    ],
)
def test_a_bad_station_is_refused_naming_the_problem(
    cloud: RunningCloud, change: dict[str, Any], field: str
) -> None:
    cloud.put_warehouse("WH1")
    response = cloud.api.post("/api/v1/warehouses/WH1/stations", json={**STATION, **change})
    assert response.status_code == 422
    assert field in _error(response)["message"]
    assert cloud.api.get("/api/v1/warehouses/WH1/stations").json() == {"stations": []}


def test_enrollment_token_is_one_time_and_expires(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    response = cloud.api.post("/api/v1/warehouses/WH1/enrollment-tokens", json={"ttl_s": 3600})
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("dse_")
    assert body["warehouse"] == "WH1"
    assert body["expires_at"].endswith("+00:00")
    default_ttl = cloud.api.post("/api/v1/warehouses/WH1/enrollment-tokens")
    assert default_ttl.status_code == 201
    too_long = cloud.api.post("/api/v1/warehouses/WH1/enrollment-tokens", json={"ttl_s": 10**9})
    assert too_long.status_code == 422
    assert "ttl_s" in _error(too_long)["message"]
    unknown = cloud.api.post("/api/v1/warehouses/WH9/enrollment-tokens", json={"ttl_s": 60})
    assert unknown.status_code == 404


def test_template_versions_are_numbered_from_one_and_immutable(cloud: RunningCloud) -> None:
    first = cloud.api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    assert first.json()["active"] is False
    second = cloud.api.post("/api/v1/templates/shipping-4x6/versions", json={**TEMPLATE, "dpi": 300})
    assert second.json()["version"] == 2
    other = cloud.api.post("/api/v1/templates/sku-2x1/versions", json=TEMPLATE)
    assert other.json()["version"] == 1
    versions = cloud.api.get("/api/v1/templates/shipping-4x6/versions").json()["versions"]
    assert [(v["version"], v["dpi"]) for v in versions] == [(1, 203), (2, 300)]
    assert cloud.api.get("/api/v1/templates/shipping-4x6/versions/1").json()["source"] == TEMPLATE["source"]
    # Creating versions is not a synced write: agents only hear of publishing.
    assert cloud.store.current_revision() == 0


def test_a_template_that_does_not_render_is_refused_with_its_line(cloud: RunningCloud) -> None:
    broken = {**TEMPLATE, "source": "^XA^CI28\n^FO50,50\n^FH^FD{{ order.order_ref ^FS\n^XZ"}
    response = cloud.api.post("/api/v1/templates/broken/versions", json=broken)
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "invalid_template"
    assert "line 3" in error["message"]
    missing_value = {**TEMPLATE, "sample_data": {}}
    response = cloud.api.post("/api/v1/templates/broken/versions", json=missing_value)
    assert response.status_code == 422
    assert "sample data" in _error(response)["message"]
    bad_name = cloud.api.post("/api/v1/templates/-bad/versions", json=TEMPLATE)
    assert bad_name.status_code == 422
    assert cloud.api.get("/api/v1/templates/broken/versions").status_code == 404


def test_a_version_preview_is_a_png(cloud: RunningCloud) -> None:
    cloud.api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE)
    response = cloud.api.get("/api/v1/templates/shipping-4x6/versions/1/preview.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert cloud.api.get("/api/v1/templates/shipping-4x6/versions/1/preview.png").content == response.content
    missing = cloud.api.get("/api/v1/templates/shipping-4x6/versions/2/preview.png")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_publish_activates_one_version_and_logs_both_changes(cloud: RunningCloud) -> None:
    for _ in range(2):
        cloud.api.post("/api/v1/templates/shipping-4x6/versions", json=TEMPLATE)
    published = cloud.api.post("/api/v1/templates/shipping-4x6/versions/1/publish", json={})
    assert published.status_code == 200
    assert published.json()["active"] is True
    assert cloud.store.current_revision() == 1
    again = cloud.api.post("/api/v1/templates/shipping-4x6/versions/1/publish")
    assert again.json()["active"] is True
    assert cloud.store.current_revision() == 1  # publishing the active version changes nothing

    cloud.api.post("/api/v1/templates/shipping-4x6/versions/2/publish")
    versions = cloud.api.get("/api/v1/templates/shipping-4x6/versions").json()["versions"]
    assert [v["active"] for v in versions] == [False, True]
    with cloud.store.engine.connect() as conn:
        log = conn.execute(
            text("SELECT revision, kind, key, warehouse_id, body FROM changes ORDER BY revision")
        ).all()
    assert [(r.revision, r.kind, r.key) for r in log] == [
        (1, "template_version", "shipping-4x6@1"),
        (2, "template_version", "shipping-4x6@1"),
        (3, "template_version", "shipping-4x6@2"),
    ]
    assert all(r.warehouse_id is None for r in log)
    assert [json.loads(r.body)["active"] for r in log] == [True, False, True]
    assert json.loads(log[2].body)["source"] == TEMPLATE["source"]
    assert cloud.api.post("/api/v1/templates/shipping-4x6/versions/9/publish").status_code == 404
    assert cloud.api.post("/api/v1/templates/shipping-4x6/versions/zero/publish").status_code == 422
