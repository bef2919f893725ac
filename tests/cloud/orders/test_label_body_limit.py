"""One parcel's carrier label may be as large as a label may be (MAX_LABEL_BYTES, 2 MiB, base64 in
JSON): the route has its own body limit, larger than the API's 1 MiB default, and no larger."""

from __future__ import annotations

import base64

import httpx

from cloud.api.errors import BodyLimitMiddleware
from cloud.api.orders import LABEL_MAX_BODY_BYTES
from cloud.app import DEFAULT_MAX_BODY_BYTES
from dockside.shipping.parcels import MAX_LABEL_BYTES
from tests.cloud.conftest import RunningCloud, order

_HEAD = b"^XA^FO50,50^A0N,40,40^FDBIG^FS^FX"
_TAIL = b"^FS^XZ"


def _zpl(size: int) -> dict[str, str]:
    """A one-label ZPL of exactly `size` bytes (a long ^FX comment)."""
    data = _HEAD + b"A" * (size - len(_HEAD) - len(_TAIL)) + _TAIL
    assert len(data) == size
    return {"format": "zpl", "data_base64": base64.b64encode(data).decode()}


def test_a_label_of_the_largest_size_is_taken_and_one_byte_more_is_refused(cloud: RunningCloud) -> None:
    cloud.put_warehouse()
    cloud.ingest(order("BIG-1"))
    largest = _zpl(MAX_LABEL_BYTES)
    assert len(httpx.Request("POST", "http://x", json=largest).content) > DEFAULT_MAX_BODY_BYTES
    response = cloud.api.post("/api/v1/orders/BIG-1/parcels/1/label", json=largest)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["bytes"] == MAX_LABEL_BYTES

    revision = cloud.store.current_revision()
    over = cloud.api.post("/api/v1/orders/BIG-1/parcels/2/label", json=_zpl(MAX_LABEL_BYTES + 1))
    assert over.status_code == 422, over.text[:500]
    assert "2,097,153 bytes" in over.json()["error"]["message"]
    assert "at most 2,097,152" in over.json()["error"]["message"]
    # Past the route's own limit the body is not even read: 413 with the limit named.
    huge = cloud.api.post(
        "/api/v1/orders/BIG-1/parcels/2/label",
        content=b'{"format":"zpl","data_base64":"' + b"A" * LABEL_MAX_BODY_BYTES + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413, huge.text[:500]
    assert huge.json()["error"]["code"] == "body_too_large"
    assert f"{LABEL_MAX_BODY_BYTES:,} bytes" in huge.json()["error"]["message"]
    assert cloud.store.current_revision() == revision, "a refused label changes nothing"


def test_the_larger_limit_is_only_the_label_route_s() -> None:
    limits = BodyLimitMiddleware(
        app=None,  # type: ignore[arg-type]
        default=DEFAULT_MAX_BODY_BYTES,
        per_path={("POST", "/api/v1/orders"): 7},
        per_pattern=[("POST", r"/api/v1/orders/[^/]+/parcels/[^/]+/label", LABEL_MAX_BODY_BYTES)],
    )
    assert limits._limit("POST", "/api/v1/orders/A-1/parcels/2/label") == LABEL_MAX_BODY_BYTES
    assert limits._limit("POST", "/api/v1/orders/A-1/parcels/2/label/") == LABEL_MAX_BODY_BYTES
    assert limits._limit("POST", "/api/v1/orders") == 7
    for other in (
        ("GET", "/api/v1/orders/A-1/parcels/2/label"),
        ("POST", "/api/v1/orders/A-1/parcels/2/label/x"),
        ("POST", "/api/v1/orders/A/1/parcels/2/label"),
        ("POST", "/api/v1/orders/A-1/parcels/2/void"),
        ("POST", "/x/api/v1/orders/A-1/parcels/2/label"),
    ):
        assert limits._limit(*other) == DEFAULT_MAX_BODY_BYTES, other
