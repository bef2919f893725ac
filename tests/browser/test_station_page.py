"""The station page in a real browser: a scanner packs, a printer fault holds, a cut cloud shows a banner."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from bench.stack import wait_for
from tests.browser.conftest import screenshot
from tests.e2e.conftest import Station


def open_station(page: Page, station: Station) -> None:
    # A weight serves one parcel: lift the last test's parcel off, then put this test's on.
    station.set_weight(0, stable=True)
    station.set_weight(1234, stable=True)
    page.goto(station.stack.agent_url() + "/?station=S1")
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("#weight-value")).to_have_text("1.234")
    expect(page.locator("#scan")).to_be_focused()


def scan(page: Page, barcode: str) -> None:
    """What a keyboard-wedge scanner does: type the barcode's characters, then Enter."""
    page.keyboard.type(barcode, delay=5)
    page.keyboard.press("Enter")


def test_a_scanners_keystrokes_pack_an_order_and_show_printed(page: Page, station: Station) -> None:
    open_station(page, station)
    before = len(station.labels())
    scan(page, "WEB-0001")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-order")).to_have_text("WEB-0001")
    expect(page.locator("#state-detail")).to_contain_text("1.234 kg")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the label at the printer")
    expect(page.locator("#scan")).to_be_focused()
    expect(page.locator("#recent li").first).to_contain_text("WEB-0001")
    screenshot(page, "station-printed")

    # The same barcode again is refused as already packed, and nothing prints twice.
    scan(page, "WEB-0001")
    expect(page.locator("#state-word")).to_have_text("ALREADY PACKED")
    assert len(station.labels()) == before + 1

    # Reprint with a reason, by keyboard only.
    page.keyboard.press("F4")
    expect(page.locator("#reprint-dialog")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="the reprinted label")
    expect(page.locator("#scan")).to_be_focused()


def test_an_unknown_barcode_says_what_to_do(page: Page, station: Station) -> None:
    open_station(page, station)
    scan(page, "NOPE-404")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#state-detail")).to_contain_text("check the scanned barcode")
    page.keyboard.press("Escape")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")


def test_an_unstable_weight_waits_then_prints_by_itself(page: Page, station: Station) -> None:
    open_station(page, station)
    station.set_weight(2100, stable=False)
    expect(page.locator("#stable")).to_have_class("stable stable-no")
    scan(page, "WEB-0002")
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    screenshot(page, "station-weighing")
    station.set_weight(2100, stable=True)
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-detail")).to_contain_text("2.100 kg")


def test_a_printer_fault_holds_the_label_and_clears_itself(page: Page, station: Station) -> None:
    open_station(page, station)
    before = len(station.labels())
    station.stack.control("printer", "POST", "/fault", {"fault": "offline"})
    scan(page, "WEB-0003")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    expect(page.locator("#state-word")).to_have_text("HELD")
    expect(page.locator("#state-todo")).to_contain_text("prints by itself when the printer is ready")
    screenshot(page, "station-held")
    assert len(station.labels()) == before

    station.stack.control("printer", "POST", "/fault", {"fault": "none"})
    expect(page.locator("body")).to_have_attribute("data-state", "printed", timeout=30_000)
    expect(page.locator("#state-order")).to_have_text("WEB-0003")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the held label to print")


def _pack_and_reach_the_cloud(station: Station, order_ref: str) -> None:
    """Pack `order_ref` through the agent's API and wait until the cloud has its printed label."""
    station.put_parcel()
    packed = station.pack(order_ref, f"api-{order_ref}")
    assert packed.status_code == 200, packed.text
    assert packed.json()["status"] == "sent", packed.text

    def printed_at_the_cloud() -> bool:
        order = station.stack.admin_call("GET", f"/api/v1/orders/{order_ref}")
        return any(event["kind"] == "label_printed" for event in order["events"])

    wait_for(printed_at_the_cloud, timeout=30, what=f"the label of {order_ref} at the cloud")


def test_metrics_on_both_sides_after_packing(station: Station) -> None:
    """The agent's and the cloud's /metrics show packs, failures, outbox, lag and connected agents."""
    _pack_and_reach_the_cloud(station, "WEB-0010")
    agent = station.http.get("/metrics").text
    assert 'dockside_pack_seconds_count{outcome="sent"}' in agent
    assert "dockside_print_failures_total" in agent or "dockside_print_failures" in agent
    assert "dockside_outbox_depth " in agent
    assert "dockside_sync_lag_revisions " in agent
    cloud = httpx.get(f"http://{station.stack.cloud.ready['http']}/metrics", timeout=10).text
    assert "dockside_cloud_watch_streams 1.0" in cloud
    assert 'dockside_cloud_orders_ingested_total{outcome="accepted"} 20.0' in cloud


def test_the_console_fleet_shows_this_agent_and_its_devices(page: Page, station: Station) -> None:
    _pack_and_reach_the_cloud(station, "WEB-0011")
    # The agent reports its devices every half minute: wait for a report that has them.
    wait_for(
        lambda: station.stack.admin_call("GET", "/api/v1/agents")["agents"][0]["devices"],
        timeout=45,
        interval=0.5,
        what="the agent's device report",
    )
    page.goto(f"http://{station.stack.cloud.ready['http']}/console/#/fleet")
    page.fill("#token", station.stack.admin_token)
    page.keyboard.press("Enter")
    expect(page.locator("#main h1")).to_have_text("Fleet")
    row = page.locator("#main tbody tr").first
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("printer ZD421-WEB")
    page.click("text=Orders")
    page.fill("#order-search", "WEB-0011")
    page.keyboard.press("Enter")
    expect(page.locator(".timeline")).to_contain_text("label printed")
    screenshot(page, "console-order-timeline")
    page.click("text=Fleet")
    expect(page.locator("#main tbody tr").first).to_contain_text("online")
    screenshot(page, "console-fleet")


def test_the_page_speaks_simplified_chinese(page: Page, station: Station) -> None:
    open_station(page, station)
    page.keyboard.press("Alt+l")
    expect(page.locator("#state-word")).to_have_text("就绪")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    scan(page, "WEB-0006")
    expect(page.locator("#state-word")).to_have_text("已打印")
    screenshot(page, "station-printed-zh")


def test_a_used_weight_waits_for_the_next_parcel(page: Page, station: Station) -> None:
    """A weight serves one parcel: after a pack the page asks for the next parcel, then packs with it."""
    open_station(page, station)
    scan(page, "WEB-0007")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-detail")).to_contain_text("1.234 kg")
    # The packed parcel still lies on the scale: its stable weight is not a ready one.
    expect(page.locator("#stable-text")).to_have_text("Put the next parcel on the scale")
    expect(page.locator("#stable")).to_have_class("stable stable-no")
    page.keyboard.press("Alt+l")
    expect(page.locator("#stable-text")).to_have_text("请放上下一个包裹")
    page.keyboard.press("Alt+l")
    before = len(station.labels())
    scan(page, "WEB-0009")
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    expect(page.locator("#state-detail")).to_contain_text("was used for the last order")
    screenshot(page, "station-next-parcel")
    assert station.status()["stations"][0]["scale"]["last_used"]["order_ref"] == "WEB-0007"
    assert len(station.labels()) == before  # nothing packed with the old parcel's weight

    station.set_weight(1876, stable=True)  # the next parcel
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-order")).to_have_text("WEB-0009")
    expect(page.locator("#state-detail")).to_contain_text("1.876 kg")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the next parcel's label")
    expect(page.locator("#stable-text")).to_have_text("Put the next parcel on the scale")


def test_cutting_the_cloud_shows_the_offline_banner_while_packing_goes_on(
    page: Page, own_station: Station
) -> None:
    station = own_station  # the cloud stays down: no other test may need it afterwards
    open_station(page, station)
    expect(page.locator("#offline-banner")).to_be_hidden()
    expect(page.locator("#cloud-text")).to_have_text("Cloud connected")
    station.stack.cloud.stop()
    expect(page.locator("#offline-banner")).to_be_visible(timeout=30_000)
    scan(page, "WEB-0004")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    station.set_weight(0, stable=True)  # the next parcel goes on the scale
    station.set_weight(1480, stable=True)
    scan(page, "WEB-0005")
    expect(page.locator("#state-order")).to_have_text("WEB-0005")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    depth = station.status()["outbox_depth"]
    assert depth >= 2  # the cloud is down: both packs' events wait
    expect(page.locator("#offline-detail")).to_contain_text(f"{depth} events wait to be sent")
    screenshot(page, "station-offline")


def test_zero_sets_an_empty_scale_to_zero(page: Page, station: Station) -> None:
    open_station(page, station)
    station.set_weight(0, stable=True)  # a scale zeroes only near empty (2 % of its capacity)
    expect(page.locator("#weight-value")).to_have_text("0.000")
    page.keyboard.press("F8")
    expect(page.locator("#scale-message")).to_have_text("Scale zeroed.")
    expect(page.locator("#scan")).to_be_focused()
    scale = station.stack.control("scale", "GET", "/")
    assert (scale["zero_offset_g"], scale["tare_g"]) == (0, 0)


def test_tare_takes_the_box_on_the_scale_off_the_weight(page: Page, station: Station) -> None:
    open_station(page, station)
    station.set_weight(400, stable=True)  # the empty box goes on
    expect(page.locator("#weight-value")).to_have_text("0.400")
    try:
        page.keyboard.press("F9")
        expect(page.locator("#scale-message")).to_have_text("Tare set.")
        expect(page.locator("#scan")).to_be_focused()
        assert station.stack.control("scale", "GET", "/")["tare_g"] == 400
        expect(page.locator("#weight-value")).to_have_text("0.000")  # the net weight
    finally:
        # Leave the scale as it was found: zeroing the empty platform clears the tare.
        station.stack.control("scale", "POST", "/weight", {"grams": 0, "stable": True})
        wait_for(
            lambda: station.http.post("/api/v1/stations/S1/scale/zero").status_code == 200,
            timeout=10,
            what="the scale to zero again",
        )
    assert station.stack.control("scale", "GET", "/")["tare_g"] == 0
