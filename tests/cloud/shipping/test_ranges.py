"""Number ranges over the real HTTP API: serials or whole tracking numbers whose check characters
must be right; backwards, too wide, overlapping or duplicate ranges refused with nothing changed."""

from __future__ import annotations

from typing import Any

import httpx

from tests.cloud.conftest import RunningCloud

S10 = {"scheme": "mod11", "prefix": "RR", "suffix": "US", "digits": 8}
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


def s10(serial: int) -> str:
    """A UPU S10 number worked out here from the standard (S10 section 5), not by the code under test."""
    digits = f"{serial:08d}"
    check = 11 - sum(w * int(d) for w, d in zip(_S10_WEIGHTS, digits, strict=True)) % 11
    return f"RR{digits}{ {10: 0, 11: 5}.get(check, check) }US"


def _post_carrier(cloud: RunningCloud) -> None:
    body = {"code": "POST", "name": "Post", "tracking": {"kind": "range", "format": S10}, "low_water": 0}
    assert cloud.api.post("/api/v1/carriers", json=body).status_code == 201


def test_the_published_s10_example_checks_as_the_standard_says() -> None:
    # UPU S10's own example: serial 47312482 has check digit 9.
    assert s10(47312482) == "RR473124829US"


def test_a_range_given_as_serials_or_as_tracking_numbers(cloud: RunningCloud) -> None:
    _post_carrier(cloud)
    by_serial = cloud.api.post("/api/v1/carriers/POST/ranges", json={"first": 1000, "last": 1999})
    assert by_serial.status_code == 201, by_serial.text
    added = by_serial.json()
    assert (added["first"], added["last"], added["size"]) == (1000, 1999, 1000)
    assert added["first_number"] == s10(1000)
    assert added["last_number"] == s10(1999)
    by_number = cloud.api.post(
        "/api/v1/carriers/POST/ranges", json={"first": "RR473124829US", "last": f" {s10(47312600).lower()} "}
    )
    assert by_number.status_code == 201, by_number.text
    assert (by_number.json()["first"], by_number.json()["last"]) == (47312482, 47312600)
    listed = cloud.api.get("/api/v1/carriers/POST/ranges").json()["ranges"]
    assert [(r["first"], r["last"]) for r in listed] == [(1000, 1999), (47312482, 47312600)]
    assert cloud.api.get("/api/v1/carriers/POST").json()["free_numbers"] == 1000 + 119
    audit = cloud.api.get("/api/v1/audit", params={"object_kind": "carrier", "object_key": "POST"}).json()
    assert [entry["action"] for entry in audit["entries"]].count("add_number_range") == 2


def _add(cloud: RunningCloud, first: int, last: int, carrier: str = "POST") -> httpx.Response:
    return cloud.api.post(f"/api/v1/carriers/{carrier}/ranges", json={"first": first, "last": last})


def _refused(cloud: RunningCloud, body: Any, status: int, code: str, carrier: str = "POST") -> str:
    before = cloud.store.current_revision()
    response = cloud.api.post(f"/api/v1/carriers/{carrier}/ranges", json=body)
    assert response.status_code == status, (body, response.text)
    error = response.json()["error"]
    assert error["code"] == code, (body, error)
    assert cloud.store.current_revision() == before
    return str(error["message"])


def test_wrong_check_digits_backwards_wide_and_overlapping_ranges_change_nothing(cloud: RunningCloud) -> None:
    _post_carrier(cloud)
    assert (
        cloud.api.post("/api/v1/carriers/POST/ranges", json={"first": 1000, "last": 1999}).status_code == 201
    )
    # A check digit one off, at either end.
    wrong = "RR473124828US"
    message = _refused(cloud, {"first": wrong, "last": s10(47312600)}, 422, "invalid_tracking_number")
    assert "first" in message
    assert "check character '8'" in message
    assert "'9'" in message
    _refused(cloud, {"first": s10(47312482), "last": "RR473126001US"}, 422, "invalid_tracking_number")
    # Another carrier's shape, letters in the serial, garbage.
    _refused(cloud, {"first": "1Z999AA10123456784", "last": s10(5)}, 422, "invalid_tracking_number")
    _refused(cloud, {"first": "RR4731248X9US", "last": s10(5)}, 422, "invalid_tracking_number")
    assert "swap them" in _refused(cloud, {"first": 3000, "last": 2000}, 422, "invalid_number_range")
    _refused(cloud, {"first": 0, "last": 10**8}, 422, "invalid_number_range")
    # The same range again, and every kind of overlap.
    assert "already added" in _refused(cloud, {"first": 1000, "last": 1999}, 409, "range_overlap")
    for first, last in ((500, 1000), (1999, 2500), (1200, 1300), (0, 5000)):
        message = _refused(cloud, {"first": first, "last": last}, 409, "range_overlap")
        assert "1000..1999" in message
    # Touching is not overlapping.
    assert (
        cloud.api.post("/api/v1/carriers/POST/ranges", json={"first": 2000, "last": 2000}).status_code == 201
    )
    ranges = cloud.api.get("/api/v1/carriers/POST/ranges").json()["ranges"]
    assert [(r["first"], r["last"]) for r in ranges] == [(1000, 1999), (2000, 2000)]


def test_hostile_range_bodies_are_refused(cloud: RunningCloud) -> None:
    _post_carrier(cloud)
    for body in (
        {},
        {"first": 1},
        {"first": 1, "last": 2, "more": 3},
        {"first": True, "last": 2},
        {"first": 1.5, "last": 2},
        {"first": -1, "last": 2},
        {"first": 10**30, "last": 10**30},
        {"first": "R" * 41, "last": 2},
        {"first": "", "last": 2},
        {"first": {"serial": 1}, "last": 2},
        {"first": [1], "last": 2},
        {"first": "RR\x00", "last": 2},
        {"first": "١٢٣", "last": 2},
        [1, 2],
        None,
    ):
        response = cloud.api.post("/api/v1/carriers/POST/ranges", json=body)
        assert response.status_code == 422, (body, response.text)
    big = cloud.api.post("/api/v1/carriers/POST/ranges", json={"first": 1, "last": 2, "pad": "x" * 2_000_000})
    assert big.status_code == 413
    assert cloud.api.get("/api/v1/carriers/POST/ranges").json() == {"ranges": []}


def test_ranges_only_for_range_carriers_that_exist(cloud: RunningCloud) -> None:
    assert (
        cloud.api.post(
            "/api/v1/carriers", json={"code": "OMS", "name": "O", "tracking": {"kind": "oms"}}
        ).status_code
        == 201
    )
    _refused(cloud, {"first": 1, "last": 2}, 409, "carrier_without_ranges", carrier="OMS")
    _refused(cloud, {"first": 1, "last": 2}, 404, "not_found", carrier="NOPE")
    assert cloud.api.get("/api/v1/carriers/NOPE/ranges").status_code == 404
    assert (
        cloud.api.post("/api/v1/carriers/bad%20code/ranges", json={"first": 1, "last": 2}).status_code == 422
    )
