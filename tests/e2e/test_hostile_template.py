"""A hostile template end to end: it passes the cloud's validation with its sample, overruns at the
station on a real parcel, and the cloud opens an exception for it; the agent keeps answering (real
processes)."""

from __future__ import annotations

from typing import Any

from bench.stack import Stack, wait_for
from tests.e2e.conftest import Station

# The data-dependent power: weight 1 renders "1", a real parcel's weight cannot render.
HOSTILE = (
    "^XA^CI28^FO50,50^A0N,40,40^FH^FD{{ order.order_ref }} {{ (((parcel.weight_g)**64)**64)**64 }}^FS^XZ"
)


def _synced(stack: Stack, station: Station) -> None:
    revision = stack.admin.get("/healthz").json()["revision"]
    wait_for(lambda: station.status()["revision"] >= revision, timeout=30, what="the agent to sync")


def _events(stack: Stack, order_ref: str) -> list[dict[str, Any]]:
    return list(stack.admin_call("GET", f"/api/v1/orders/{order_ref}")["events"])


def test_a_template_that_validates_and_overruns_at_the_station_fails_by_name(
    stack: Stack, station: Station
) -> None:
    body = {
        "language": "zpl",
        "source": HOSTILE,
        "sample_data": {"order": {"order_ref": "SAMPLE-1"}, "parcel": {"weight_g": 1}},
        "width_dots": 812,
        "height_dots": 1218,
    }
    version = stack.admin_call("POST", "/api/v1/templates/shipping-4x6/versions", body)["version"]
    stack.admin_call("POST", f"/api/v1/templates/shipping-4x6/versions/{version}/publish")
    _synced(stack, station)

    station.put_parcel()
    failed = station.pack("E2E-0001", "hostile-1")
    assert failed.status_code == 422, failed.text
    error = failed.json()["error"]
    assert error["code"] == "template_unsafe"
    assert error["message"].startswith(f"template shipping-4x6 v{version} exceeded its render budget: ")
    assert "publish a new version" in error["message"]
    assert station.http.get("/healthz").status_code == 200

    # Set aside: the next order that needs it fails the same way, and nothing was printed.
    station.put_parcel()
    again = station.pack("E2E-0002", "hostile-2")
    assert again.status_code == 422
    assert again.json()["error"] == error
    assert station.labels() == []

    def raised() -> list[dict[str, Any]]:
        return [event for event in _events(stack, "E2E-0001") if event["kind"] == "exception_raised"]

    (event,) = wait_for(raised, timeout=30, what="the exception to reach the cloud")
    assert event["body"]["reason"] == "template_over_budget"
    assert event["body"]["template"] == "shipping-4x6"
    assert event["body"]["template_version"] == version
    assert event["station"] == "S1"
    (opened,) = stack.admin_call("GET", "/api/v1/exceptions?order_ref=E2E-0001")["exceptions"]
    assert opened["kind"] == "raised_at_edge"
    assert opened["message"] == error["message"]

    # Rolling back to the shipped version packs the order.
    stack.admin_call("POST", "/api/v1/templates/shipping-4x6/rollback", {"version": 1})
    _synced(stack, station)
    station.put_parcel()
    printed = station.pack("E2E-0001", "after-rollback")
    assert printed.status_code == 200, printed.text
    assert printed.json()["status"] == "sent"
    assert len(station.labels()) == 1
