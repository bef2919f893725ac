"""The ShipStation adapter against a local server implementing the documented v2 label calls."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cloud.shipping.carrier_api import (
    CarrierApi,
    CarrierApiError,
    CarrierApiRefused,
    CarrierApiUnavailable,
    LabelRequest,
)
from cloud.shipping.shipstation import BASE_URL_ENV, DEFAULT_BASE_URL, ShipStationApi, _origin
from dockside.orders import Address, Money
from dockside.shipping.check_digits import CheckScheme, is_valid
from dockside.shipping.parcels import LabelFormat
from tests.cloud.shipping.shipstation_server import (
    API_KEY,
    PDF_LABEL,
    PNG_LABEL,
    ZPL_LABEL,
    ShipStationServer,
    label_request_problems,
)
from tests.cloud.shipping.shipstation_server import shipstation_server as shipstation_server

WAREHOUSE = Address(
    name="Dockside Fulfilment",
    company="Dockside Ltd",
    street="4009 Marathon Blvd",
    city="Austin",
    region="TX",
    postal_code="78756",
    country="US",
    phone="512-555-5555",
)
CUSTOMER = Address(
    name="Amanda Miller",
    street="525 S Winchester Blvd",
    street2="Apt 4",
    city="San Jose",
    region="CA",
    postal_code="95128",
    country="US",
)


def _request(**changes: object) -> LabelRequest:
    fields: dict[str, object] = {
        "order_ref": "ORD-1001",
        "parcel": 1,
        "ship_to": CUSTOMER,
        "ship_from": WAREHOUSE,
        "weight_g": 1250,
        "service": "ups_ground",
        "dimensions_mm": (305, 200, 150),
    }
    fields.update(changes)
    return LabelRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def api(shipstation_server: ShipStationServer) -> Iterator[ShipStationApi]:
    with ShipStationApi(API_KEY, base_url=shipstation_server.url, timeout_s=5) as adapter:
        yield adapter


def _posts(server: ShipStationServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["method"] == "POST"]


def test_a_label_is_bought_and_downloaded_as_documented(api: ShipStationApi, shipstation_server) -> None:
    adapter: CarrierApi = api  # the adapter is a CarrierApi (mypy checks the protocol)
    label = adapter.create_label(_request())
    assert shipstation_server.problems == []
    assert label.label_id.startswith("se-")
    assert label.tracking_number == "1Z999AA10123456784"
    assert is_valid(CheckScheme.UPS_1Z, label.tracking_number)
    assert label.label.format is LabelFormat.ZPL
    assert label.label.data() == ZPL_LABEL
    assert (label.carrier, label.service) == ("ups", "ups_ground")
    assert label.cost == Money(amount=Decimal("9.37"), currency="USD")

    (post,) = _posts(shipstation_server)
    headers = {k.lower(): v for k, v in post["headers"].items()}
    assert headers["api-key"] == API_KEY
    assert headers["content-type"] == "application/json"
    body = json.loads(post["body"])
    assert body["label_format"] == "zpl"
    assert body["label_download_type"] == "url"
    package = body["shipment"]["packages"][0]
    assert package["weight"] == {"value": 1250, "unit": "gram"}
    assert package["dimensions"] == {"unit": "centimeter", "length": 30.5, "width": 20.0, "height": 15.0}
    ship_to = body["shipment"]["ship_to"]
    assert (ship_to["address_line1"], ship_to["address_line2"], ship_to["city_locality"]) == (
        "525 S Winchester Blvd",
        "Apt 4",
        "San Jose",
    )
    assert body["shipment"]["ship_from"]["company_name"] == "Dockside Ltd"
    assert "carrier_id" not in body["shipment"]
    gets = [r for r in shipstation_server.requests if r["method"] == "GET"]
    assert len(gets) == 1
    assert str(gets[0]["path"]).endswith(".zpl")


@pytest.mark.parametrize(("fmt", "data"), [(LabelFormat.PDF, PDF_LABEL), (LabelFormat.PNG, PNG_LABEL)])
def test_pdf_and_png_labels_download_in_their_format(
    api: ShipStationApi, shipstation_server, fmt: LabelFormat, data: bytes
) -> None:
    label = api.create_label(_request(label_format=fmt, carrier_account="se-123890", dimensions_mm=None))
    assert label.label.format is fmt
    assert label.label.data() == data
    body = json.loads(_posts(shipstation_server)[0]["body"])
    assert body["shipment"]["carrier_id"] == "se-123890"
    assert "dimensions" not in body["shipment"]["packages"][0]
    assert shipstation_server.problems == []


def test_a_label_is_voided_once(api: ShipStationApi, shipstation_server) -> None:
    label = api.create_label(_request())
    assert api.void_label(label.label_id) is True
    assert api.void_label(label.label_id) is False  # "label_already_voided": declined, not an error
    puts = [r for r in shipstation_server.requests if r["method"] == "PUT"]
    assert [r["path"] for r in puts] == [f"/v2/labels/{label.label_id}/void"] * 2
    assert shipstation_server.problems == []


def test_voiding_an_unknown_label_is_refused(api: ShipStationApi) -> None:
    with pytest.raises(CarrierApiRefused, match=r"se-404.*not found"):
        api.void_label("se-404")


@pytest.mark.parametrize("label_id", ["", "../../v2/labels", "se-1/void?x=", "se 1", "x" * 65, None])
def test_a_hostile_label_id_is_refused_without_a_request(
    api: ShipStationApi, shipstation_server, label_id: object
) -> None:
    with pytest.raises(CarrierApiRefused, match=r"not a ShipStation label id"):
        api.void_label(label_id)  # type: ignore[arg-type]
    assert shipstation_server.requests == []


def test_a_wrong_api_key_says_to_set_it_again(shipstation_server) -> None:
    with (
        ShipStationApi("TEST_wrong", base_url=shipstation_server.url) as api,
        pytest.raises(
            CarrierApiRefused, match=r"refused the API key.*set the carrier account's key"
        ) as raised,
    ):
        api.create_label(_request())
    assert raised.value.code == "carrier_api_key"
    assert not raised.value.retry_may_help
    assert not raised.value.may_have_bought


def test_a_refused_address_carries_shipstations_message(api: ShipStationApi, shipstation_server) -> None:
    shipstation_server.mode = "refuse_address"
    with pytest.raises(CarrierApiRefused, match=r"postal_code not found \(invalid_address\)") as raised:
        api.create_label(_request())
    assert not raised.value.retry_may_help
    assert not raised.value.may_have_bought


def test_a_500_may_have_bought_a_label_and_may_be_retried(api: ShipStationApi, shipstation_server) -> None:
    shipstation_server.mode = "status_500"
    with pytest.raises(CarrierApiUnavailable, match=r"HTTP 500.*Internal error.*already bought") as raised:
        api.create_label(_request())
    assert raised.value.retry_may_help
    assert raised.value.may_have_bought


def test_rate_limiting_is_worth_a_retry_and_bought_nothing(api: ShipStationApi, shipstation_server) -> None:
    shipstation_server.mode = "rate_limited"
    with pytest.raises(CarrierApiUnavailable, match=r"HTTP 429") as raised:
        api.create_label(_request())
    assert raised.value.retry_may_help
    assert not raised.value.may_have_bought


def test_a_success_that_is_not_json_is_an_error_that_may_have_bought(
    api: ShipStationApi, shipstation_server
) -> None:
    shipstation_server.mode = "not_json"
    with pytest.raises(CarrierApiError, match=r"not a JSON object.*Gateway maintenance") as raised:
        api.create_label(_request())
    assert raised.value.may_have_bought
    assert not raised.value.retry_may_help


def test_a_label_without_tracking_number_is_voided_at_once(api: ShipStationApi, shipstation_server) -> None:
    shipstation_server.mode = "missing_tracking"
    with pytest.raises(CarrierApiError, match=r"no usable tracking number.*was voided") as raised:
        api.create_label(_request())
    assert not raised.value.may_have_bought
    assert shipstation_server.voided == set(shipstation_server.labels)
    assert len(shipstation_server.voided) == 1


def test_a_download_from_another_host_is_refused_and_the_label_voided(
    api: ShipStationApi, shipstation_server
) -> None:
    shipstation_server.mode = "download_elsewhere"
    with pytest.raises(CarrierApiError, match=r"169.254.169.254.*not from the API's own host.*was voided"):
        api.create_label(_request())
    assert [r["method"] for r in shipstation_server.requests] == ["POST", "PUT"]


def test_a_download_that_is_not_a_label_is_refused_and_the_label_voided(
    api: ShipStationApi, shipstation_server
) -> None:
    shipstation_server.mode = "bad_label"
    with pytest.raises(CarrierApiError, match=r"is not a ZPL file.*was voided") as raised:
        api.create_label(_request())
    assert raised.value.code == "carrier_api_bad_label"
    assert len(shipstation_server.voided) == 1


def test_an_oversized_answer_is_refused_before_it_is_read(api: ShipStationApi, shipstation_server) -> None:
    shipstation_server.mode = "huge"
    with pytest.raises(CarrierApiError, match=r"over 1,048,576 bytes") as raised:
        api.create_label(_request())
    assert raised.value.may_have_bought


@pytest.mark.parametrize("mode", ["slow", "endless"])
def test_an_answer_that_does_not_come_in_time_is_unavailable(shipstation_server, mode: str) -> None:
    shipstation_server.mode = mode
    with (
        ShipStationApi(API_KEY, base_url=shipstation_server.url, timeout_s=0.5) as api,
        pytest.raises(CarrierApiUnavailable, match=r"0\.5 s") as raised,
    ):
        api.create_label(_request())
    assert raised.value.code == "carrier_api_timeout"
    assert raised.value.retry_may_help
    assert raised.value.may_have_bought  # the request went out: a label may exist


def test_an_api_that_is_not_there_is_unavailable_and_bought_nothing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        ShipStationApi(API_KEY, base_url=f"http://127.0.0.1:{port}", timeout_s=2) as api,
        pytest.raises(CarrierApiUnavailable, match=r"could not connect") as raised,
    ):
        api.create_label(_request())
    assert raised.value.code == "carrier_api_unreachable"
    assert not raised.value.may_have_bought


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"weight_g": 0}, "weight from 1 g"),
        ({"service": "ups ground; DROP"}, "not a ShipStation service code"),
        ({"service": ""}, "not a ShipStation service code"),
        ({"carrier_account": "se-1/../x"}, "not a ShipStation carrier id"),
    ],
)
def test_a_request_that_cannot_be_right_is_refused_without_a_call(
    api: ShipStationApi, shipstation_server, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(CarrierApiRefused, match=message):
        api.create_label(_request(**changes))
    assert shipstation_server.requests == []


@pytest.mark.parametrize("key", ["", "key with spaces", "key\r\nX-Evil: 1", "k" * 501, "ключ"])
def test_an_api_key_that_cannot_be_a_header_is_refused(key: str) -> None:
    with pytest.raises(CarrierApiRefused, match=r"API key"):
        ShipStationApi(key)


@pytest.mark.parametrize("url", ["http://api.shipstation.com", "ftp://127.0.0.1", "file:///etc/passwd"])
def test_a_plain_http_or_odd_base_url_is_refused(url: str) -> None:
    with pytest.raises(CarrierApiRefused, match=r"https"):
        ShipStationApi(API_KEY, base_url=url)


def test_the_local_server_refuses_a_request_that_is_not_documented() -> None:
    # The server's checks are what make the tests above mean something: they must catch drift.
    good = {
        "shipment": {
            "service_code": "ups_ground",
            "ship_to": {k: "X" for k in ("name", "address_line1", "city_locality", "postal_code")}
            | {"country_code": "US"},
            "ship_from": {k: "X" for k in ("name", "address_line1", "city_locality", "postal_code")}
            | {"country_code": "US"},
            "packages": [{"weight": {"value": 1, "unit": "gram"}}],
        },
        "label_format": "zpl",
    }
    assert label_request_problems(good) == []
    bad = json.loads(json.dumps(good))
    bad["shipment"]["packages"][0]["weight"] = {"value": "1.2", "unit": "kg"}
    bad["shipment"]["ship_to"]["street"] = "x"
    bad["label_format"] = "epl"
    problems = label_request_problems(bad)
    assert any("weight" in p for p in problems)
    assert any("ship_to.street" in p for p in problems)
    assert any("label_format" in p for p in problems)


def test_the_base_url_comes_from_the_environment_when_set(shipstation_server) -> None:
    with ShipStationApi.from_env(API_KEY, {BASE_URL_ENV: f" {shipstation_server.url} "}) as api:
        assert api.create_label(_request()).tracking_number == "1Z999AA10123456784"
    with ShipStationApi.from_env(API_KEY, {}) as api:
        assert api._origin == ("https", "api.shipstation.com", 443)
    assert DEFAULT_BASE_URL == "https://api.shipstation.com"


def test_a_download_url_with_the_default_port_written_out_is_the_same_origin() -> None:
    assert _origin(httpx.URL("https://api.shipstation.com:443/v2/downloads/x.zpl")) == _origin(
        httpx.URL("https://api.shipstation.com")
    )
    assert _origin(httpx.URL("https://api.shipstation.com:8443/")) != _origin(
        httpx.URL("https://api.shipstation.com")
    )
