"""The station page's waves in a real browser: a wave released in the cloud is listed, "Print wave"
prints its labels in the chosen order once, and the page shows the progress and what was skipped."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from bench.stack import wait_for
from tests.browser.conftest import screenshot
from tests.e2e.conftest import Station

CHOSEN = ["WEB-0014", "WEB-0005", "WEB-0011", "WEB-0008"]


def _printed_refs(station: Station, since: int) -> list[str]:
    refs = []
    for label in station.labels()[since:]:
        found = re.findall(r"WEB-\d{4}", "\n".join(label["fields"]))
        refs.append(found[0] if found else "?")
    return refs


def test_print_wave_prints_the_labels_in_order_once_and_shows_the_progress(
    page: Page, station: Station
) -> None:
    stack = station.stack
    wave = stack.admin_call(
        "POST", "/api/v1/waves", {"warehouse": "WH1", "station": "S1", "order_refs": [*CHOSEN, "WEB-0017"]}
    )
    stack.admin_call("POST", "/api/v1/orders/WEB-0017/cancel", {"reason": "out of stock"})
    wait_for(
        lambda: station.http.get("/api/v1/orders/WEB-0017").json()["state"] == "cancelled",
        timeout=30,
        what="the cancel to reach the agent",
    )
    before = len(station.labels())
    page.goto(station.stack.agent_url() + "/?station=S1")
    item = page.locator(f'#waves li[data-wave="{wave["id"]}"]')
    expect(item).to_contain_text(f"Wave {wave['id']} · 5 orders")
    expect(item).to_contain_text("0 of 5 printed · 0 held · 1 skipped")
    screenshot(page, "station-wave-released")

    item.locator("button.print-wave").click()

    expect(item).to_contain_text("4 of 5 printed · 0 held · 1 skipped")
    result = page.locator("#wave-result")
    expect(result).to_contain_text(f"Wave {wave['id']}: 4 printed, 0 held, 1 not printed.")
    expect(result).to_contain_text("expected weight")
    expect(result.locator(".wave-skip-order_cancelled")).to_contain_text("WEB-0017: This order was cancelled")
    expect(item.locator("button.print-wave")).to_be_disabled()  # nothing is left to print
    screenshot(page, "station-wave-printed")
    wait_for(lambda: len(station.labels()) == before + 4, timeout=10, what="the wave's labels")
    assert _printed_refs(station, before) == CHOSEN

    # In Chinese the same progress reads in Chinese; the scan field keeps the focus for the scanner.
    page.keyboard.press("Alt+l")
    expect(item).to_contain_text("已打印 4/5")
    page.keyboard.press("Alt+l")
    expect(page.locator("#scan")).to_be_focused()
    assert len(station.labels()) == before + 4
