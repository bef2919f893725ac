"""The item check on the station page, in a real Chromium against a real agent with mock devices:
where the warehouse checks items, a scanned order shows its lines; a wrong item and an extra unit
are refused loudly (red panel, failure sound) and counted nowhere; a reload resumes the count
from the agent; the right items then lead on to weighing and a printed label."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from bench.demo_data import SHIP_FROM, demo_orders
from bench.provision import ingest_orders
from bench.stack import wait_for
from tests.browser.conftest import screenshot
from tests.e2e.conftest import Station

MUG = "4006381333931"  # EAN-13
PEN = "036000291452"  # UPC-A


def _item_check_order(ref: str) -> dict[str, Any]:
    order = demo_orders(1, prefix="ITEMS")[0]
    lines = [
        {"sku": "MUG-BLUE", "qty": 2, "barcode": MUG, "description": "Blue mug"},
        {"sku": "PEN-RED", "qty": 1, "barcode": PEN, "description": "Red pen"},
    ]
    return {**order, "order_ref": ref, "lines": lines}


def _turn_item_check_on(station: Station) -> None:
    station.stack.admin_call(
        "POST",
        "/api/v1/warehouses",
        {"code": "WH1", "name": "Warehouse WH1", "ship_from": SHIP_FROM, "item_check": True},
    )
    ingest_orders(station.stack, [_item_check_order("ITEMS-0001")])
    station.wait_synced("ITEMS-0001")
    wait_for(
        lambda: station.http.get("/api/v1/stations/S1/item-check").json()["required"] is True,
        timeout=30,
        what="the agent to see the warehouse's item check",
    )


def _scan(page: Page, barcode: str) -> None:
    page.keyboard.type(barcode, delay=5)
    page.keyboard.press("Enter")


def _line(page: Page, sku: str) -> Any:
    return page.locator(f'#items-box li[data-sku="{sku}"] .item-count')


def _failures(page: Page) -> int:
    return int(page.evaluate("window.__sounds.filter((s) => s.sound === 'failure').length"))


def test_a_wrong_item_is_refused_on_the_page_and_the_right_items_lead_to_a_printed_label(
    page: Page, own_station: Station
) -> None:
    station = own_station
    _turn_item_check_on(station)
    station.set_weight(0, stable=True)
    station.set_weight(1234, stable=True)
    page.goto(station.stack.agent_url() + "/?station=S1")
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#scan")).to_be_focused()
    before = len(station.labels())

    _scan(page, "ITEMS-0001")
    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "items")
    expect(page.locator("#state-word")).to_have_text("CHECK ITEMS")
    expect(page.locator("#state-detail")).to_have_text("0 of 3 items scanned.")
    expect(_line(page, "MUG-BLUE")).to_have_text("0 / 2")
    expect(_line(page, "PEN-RED")).to_have_text("0 / 1")
    # A parcel on the scale does not print an order whose items are not checked.
    assert len(station.labels()) == before

    failures = _failures(page)
    _scan(page, "96385074")  # a GTIN-8 of something this order does not hold
    expect(body).to_have_attribute("data-state", "item_refused")
    expect(page.locator("#state-word")).to_have_text("WRONG ITEM")
    expect(page.locator("#state-detail")).to_have_text("96385074 is not in this order.")
    expect(page.locator("#state-todo")).to_contain_text("Put it aside")
    expect(page.locator("#items-box .items-refused")).to_have_text("✗ 96385074")
    assert _failures(page) == failures + 1
    panel = page.locator("#state-panel").evaluate("(el) => getComputedStyle(el).backgroundImage")
    assert "linear-gradient" in panel  # the loud, striped red
    screenshot(page, "station-item-check-wrong-item")

    _scan(page, PEN)  # UPC-A; the order's line holds the same item
    expect(body).to_have_attribute("data-state", "items")
    expect(_line(page, "PEN-RED")).to_have_text("1 / 1")
    _scan(page, "0" + PEN)  # the same item again, as its EAN-13: one too many
    expect(page.locator("#state-word")).to_have_text("ONE TOO MANY")
    expect(page.locator("#state-todo")).to_contain_text("Take this unit out")
    expect(_line(page, "PEN-RED")).to_have_text("1 / 1")
    _scan(page, MUG)
    expect(_line(page, "MUG-BLUE")).to_have_text("1 / 2")

    # A reload keeps the count: the agent has it, and the page resumes the check.
    page.reload()
    expect(body).to_have_attribute("data-state", "items")
    expect(page.locator("#state-order")).to_have_text("ITEMS-0001")
    expect(_line(page, "MUG-BLUE")).to_have_text("1 / 2")
    expect(_line(page, "PEN-RED")).to_have_text("1 / 1")
    assert len(station.labels()) == before

    # In 中文 the check speaks Chinese.
    page.keyboard.press("Alt+l")
    expect(page.locator("#state-word")).to_have_text("核对商品")
    expect(page.locator("#items-box .items-title")).to_have_text("商品 · 2 / 3")
    page.evaluate("localStorage.setItem('dockside.lang', 'en')")
    page.reload()
    expect(page.locator("#state-word")).to_have_text("CHECK ITEMS")

    _scan(page, f"]C101{'0' + MUG}10LOT-1")  # the last mug, from its GS1-128 carton code
    expect(body).to_have_attribute("data-state", "printed", timeout=20_000)
    expect(page.locator("#state-order")).to_have_text("ITEMS-0001")
    expect(page.locator("#items-box")).to_be_hidden()
    wait_for(lambda: len(station.labels()) == before + 1, timeout=15, what="the order's label")
    assert "ITEMS-0001" in station.labels()[-1]["data"]
    wait_for(
        lambda: (
            sum(
                e["kind"] == "item_check_refused"
                for e in station.stack.admin_call("GET", "/api/v1/orders/ITEMS-0001")["events"]
            )
            == 2
        ),
        timeout=20,
        what="the two refusals on the order's timeline in the cloud",
    )
