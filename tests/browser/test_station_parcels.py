"""Orders of several parcels at the station page, in a real Chromium against a real agent.

The demo's shipping set-up (`bench.demo_shipping`: DEMOPOST numbers from a leased range, and
DEMO-B2C-2, two cartons) plus two-carton orders of this module's own, with mock devices. A scan
packs the order's next unlabelled parcel and the panel says "parcel n of m" with its tracking
number; once each expected parcel has its label a scan answers already packed; Add parcel prints
one more; Close order asks for a reason when the order is short; a parcel's label is voided from
the page (with a reason, after a confirmation) and the next scan relabels it; Reprint names the
parcel it reprints; a GS1 scan is looked up (the agent reads it as the pack does) and packed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from bench.demo_data import demo_orders
from bench.demo_shipping import provision_shipping
from bench.provision import ingest_orders, provision
from bench.stack import running_stack, wait_for
from tests.browser.conftest import screenshot
from tests.browser.test_station_truth import open_station, scan, states
from tests.e2e.conftest import Station

TWO_CARTONS = ("PAR-0001", "PAR-0002", "PAR-0003", "PAR-0004", "PAR-0005")
TRACKING = r"RR1000\d{5}US"


def _two_carton_orders() -> list[dict[str, Any]]:
    orders = demo_orders(len(TWO_CARTONS), prefix="PAR")
    for order in orders:
        order["service_level"] = "standard"  # DEMOPOST, its numbers from the leased range
        order["parcels"] = [
            {"expected_weight_g": 1200, "dimensions_mm": [400, 300, 200]},
            {"expected_weight_g": 1300, "dimensions_mm": [300, 300, 200]},
        ]
    return orders


@pytest.fixture(scope="module")
def shipping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """WH1 as `make demo` sets it up (label and slip printers, DEMOPOST's range, DEMO-B2C-2) and
    this module's two-carton orders, the agent synced and holding DEMOPOST numbers."""
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        stack.start_cloud()
        stack.start_printer(serial="ZD421-PARCELS")
        stack.start_printer("slip-printer", serial="TM-T88-PARCELS", language="escpos")
        stack.start_scale()
        stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
        provision(stack, order_count=1, order_prefix="ONE")
        provision_shipping(stack, scale_port=stack.processes["scale"].ready["pty"])
        ingest_orders(stack, _two_carton_orders())
        stack.enroll_agent("WH1")
        stack.start_agent()
        station = Station(stack)
        station.wait_synced(TWO_CARTONS[-1])
        station.wait_synced("DEMO-B2C-2")
        wait_for(
            lambda: station.status()["tracking_numbers"].get("DEMOPOST", 0) > 0,
            timeout=30,
            what="a lease of DEMOPOST numbers at the agent",
        )
        try:
            yield station
        finally:
            station.http.close()


def agent_parcels(station: Station, ref: str) -> dict[int, str]:
    """Parcel number -> tracking number of the order's labelled parcels, as the agent has them."""
    body = station.http.get(f"/api/v1/orders/{ref}").json()
    return {p["parcel"]: p["tracking_number"] for p in body["parcels"]}


def expect_printed_parcel(page: Page, ref: str, n: int, m: int) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-order")).to_have_text(ref)
    expect(page.locator("#state-parcel")).to_have_text(_parcel_line(n, m))


def _parcel_line(n: int, m: int) -> re.Pattern[str]:
    return re.compile(rf"^Parcel {n} of {m} · {TRACKING}$")


def pack_parcels(page: Page, station: Station, ref: str, count: int) -> None:
    """Scan `ref` `count` times, a new parcel on the scale before each scan after the first."""
    for n in range(1, count + 1):
        if n > 1:
            station.put_parcel()
        scan(page, ref)
        expect_printed_parcel(page, ref, n, max(2, n))


def test_a_two_carton_order_prints_one_label_per_scan_then_answers_packed(
    page: Page, shipping: Station
) -> None:
    station = shipping
    open_station(page, station)
    before = len(station.labels())

    scan(page, "DEMO-B2C-2")
    expect_printed_parcel(page, "DEMO-B2C-2", 1, 2)
    expect(page.locator("#state-todo")).to_contain_text("put the order's next parcel on the scale")
    first = agent_parcels(station, "DEMO-B2C-2")
    assert list(first) == [1]
    expect(page.locator("#state-parcel")).to_contain_text(first[1])

    station.put_parcel()
    scan(page, "DEMO-B2C-2")
    expect_printed_parcel(page, "DEMO-B2C-2", 2, 2)
    expect(page.locator("#state-todo")).to_contain_text("then scan the next order")
    both = agent_parcels(station, "DEMO-B2C-2")
    assert list(both) == [1, 2]
    assert both[1] == first[1]
    assert both[2] != both[1]
    expect(page.locator("#state-parcel")).to_contain_text(both[2])
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="two labels")
    printed = station.labels()[before:]
    assert both[1] in printed[0]["data"]
    assert both[2] in printed[1]["data"]
    parcels = page.locator("#parcels li")
    expect(parcels).to_have_count(2)
    expect(page.locator("#parcels-count")).to_have_text("2 of 2 labelled")
    screenshot(page, "station-parcel-2-of-2")

    # Each expected parcel has its label: a third scan prints nothing and says so.
    seen = len(states(page))
    scan(page, "DEMO-B2C-2")
    expect(page.locator("#state-word")).to_have_text("ALREADY PACKED")
    expect(page.locator("#state-parcel")).to_have_text("2 of 2 parcels labelled")
    assert "weighing" not in states(page)[seen:]
    assert len(station.labels()) == before + 2

    page.keyboard.press("Alt+l")
    expect(page.locator("#state-parcel")).to_have_text("已打印面单的包裹：2/2")
    page.keyboard.press("Alt+l")


def test_add_parcel_weighs_and_prints_one_parcel_more_than_expected(page: Page, shipping: Station) -> None:
    station = shipping
    ref = TWO_CARTONS[0]
    open_station(page, station)
    expect(page.locator("#add-parcel")).to_be_hidden()  # no order yet
    pack_parcels(page, station, ref, 2)
    before = len(station.labels())

    page.keyboard.press("F3")
    # The parcel on the scale was parcel 2's: the page asks for the new one before printing.
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    expect(page.locator("#state-detail")).to_have_text("Put parcel 3 of 3 on the scale and keep it still.")
    assert len(station.labels()) == before
    # Put down without waiting: the waiting page takes the new parcel's weight at once.
    station.stack.control("scale", "POST", "/weight", {"grams": 1500, "stable": True})
    expect_printed_parcel(page, ref, 3, 3)
    assert list(agent_parcels(station, ref)) == [1, 2, 3]
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="parcel 3's label")
    expect(page.locator("#parcels-count")).to_have_text("3 of 2 labelled")

    # The button does the same.
    page.click("#add-parcel")
    expect(page.locator("#state-parcel")).to_have_text("Parcel 4 of 4")
    page.keyboard.press("Escape")
    assert list(agent_parcels(station, ref)) == [1, 2, 3]


def test_close_order_asks_a_reason_when_fewer_parcels_than_expected(page: Page, shipping: Station) -> None:
    station = shipping
    ref = TWO_CARTONS[1]
    open_station(page, station)
    expect(page.locator("#close")).to_be_hidden()
    scan(page, ref)
    expect_printed_parcel(page, ref, 1, 2)

    page.keyboard.press("F7")
    dialog = page.locator("#close-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#close-which")).to_have_text(
        f"Order {ref} ships with the parcels labelled so far: 1 of 2."
    )
    page.click("#close-cancel")  # the confirmation: nothing closed
    expect(dialog).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-state", "printed")

    page.click("#close")
    page.click("#close-ok")  # no reason: refused on the page
    expect(dialog).to_be_visible()
    expect(page.locator("#close-reason")).to_have_attribute(
        "placeholder", "Type why the order ships with fewer parcels."
    )
    page.fill("#close-reason", "second carton damaged, reshipped later")
    page.click("#close-ok")
    expect(page.locator("body")).to_have_attribute("data-state", "closed")
    expect(page.locator("#state-word")).to_have_text("ORDER CLOSED")
    expect(page.locator("#state-detail")).to_have_text("It ships with 1 of 2 parcels.")
    expect(page.locator("#scan")).to_be_focused()
    wait_for(
        lambda: station.stack.admin_call("GET", f"/api/v1/orders/{ref}")["state"] == "labelled",
        timeout=30,
        what="the close to make the order labelled in the cloud",
    )


def test_void_a_parcel_from_the_page_then_a_scan_relabels_it(page: Page, shipping: Station) -> None:
    station = shipping
    ref = TWO_CARTONS[2]
    open_station(page, station)
    pack_parcels(page, station, ref, 2)
    old = agent_parcels(station, ref)

    void_2 = page.locator('#parcels li[data-parcel="2"] button.void')
    void_2.click()
    expect(page.locator("#void-which")).to_have_text(f"Order {ref}, parcel 2, label {old[2]}")
    page.click("#void-cancel")  # the confirmation: nothing voided
    assert agent_parcels(station, ref) == old

    void_2.click()
    page.click("#void-ok")  # no reason: refused on the page
    expect(page.locator("#void-dialog")).to_be_visible()
    page.fill("#void-reason", "label smeared at the dock")
    page.click("#void-ok")
    expect(page.locator("body")).to_have_attribute("data-state", "voided")
    expect(page.locator("#state-word")).to_have_text("LABEL VOIDED")
    expect(page.locator("#state-detail")).to_have_text(
        f"Parcel 2: label {old[2]} voided (label smeared at the dock)."
    )
    assert agent_parcels(station, ref) == {1: old[1]}
    expect(page.locator("#parcels li")).to_have_count(1)

    station.put_parcel()
    scan(page, ref)
    expect_printed_parcel(page, ref, 2, 2)
    new = agent_parcels(station, ref)
    assert new[1] == old[1]
    assert new[2] not in (old[1], old[2])
    expect(page.locator("#state-parcel")).to_contain_text(new[2])


def test_reprint_names_the_parcel_it_reprints(page: Page, shipping: Station) -> None:
    station = shipping
    ref = TWO_CARTONS[3]
    open_station(page, station)
    expect(page.locator("#reprint")).to_be_hidden()  # nothing to reprint on a fresh page
    pack_parcels(page, station, ref, 2)
    tracking = agent_parcels(station, ref)
    before = len(station.labels())

    expect(page.locator("#reprint")).to_contain_text("parcel 2")
    page.keyboard.press("F4")
    expect(page.locator("#reprint-which")).to_have_text(
        f"{ref} · parcel 2 of 2 · shipping label · DEMOPOST standard"
    )
    page.keyboard.press("Enter")
    expect_printed_parcel(page, ref, 2, 2)
    expect(page.locator("#state-todo")).to_have_text("Label printed again.")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the reprint")
    assert tracking[2] in station.labels()[-1]["data"]


def test_a_gs1_scan_is_looked_up_then_packed_parcel_by_parcel(page: Page, shipping: Station) -> None:
    station = shipping
    ref = TWO_CARTONS[4]
    open_station(page, station)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/orders/" in request.url else None)

    # An unknown order behind a GS1 code answers at once: no parcel is asked for.
    station.set_weight(2100, stable=False)
    scan(page, "(400)NOPE-0001")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#state-detail")).to_contain_text("This order is not known at this station")
    assert "weighing" not in states(page)
    assert any(url.endswith("/api/v1/orders/(400)NOPE-0001") for url in asked)

    station.set_weight(1234, stable=True)
    station.put_parcel()
    scan(page, f"(400){ref}(10)LOT7")
    expect_printed_parcel(page, ref, 1, 2)
    station.put_parcel()
    scan(page, f"(400){ref}")
    expect_printed_parcel(page, ref, 2, 2)
    assert list(agent_parcels(station, ref)) == [1, 2]


def test_the_order_read_takes_a_scan_as_the_pack_does(shipping: Station) -> None:
    http = shipping.http
    ref = "DEMO-B2C-2"
    for scanned in (ref, f"(400){ref}", f"%5DC1400{ref}%1D10LOT7", f"(00)106141411234567897(400){ref}"):
        answer = http.get(f"/api/v1/orders/{scanned}")
        assert answer.status_code == 200, (scanned, answer.text)
        assert answer.json()["order_ref"] == ref
        assert answer.json()["expected_parcels"] == 2
    assert http.get("/api/v1/orders/ONE-0001").json()["expected_parcels"] is None

    for hostile, said in (
        ("(00)106141411234567897", "no order reference AI"),
        ("D" * 5_000, "5,000 characters"),
        ("%07DEMO-0001", "control character"),
        ("(40", "brackets"),
    ):
        answer = http.get(f"/api/v1/orders/{hostile}")
        assert answer.status_code == 422, (hostile, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "scan_unreadable"
        assert said in error["message"]
    assert http.get("/api/v1/orders/NOPE-0002").json()["error"]["code"] == "order_not_found"
