"""The station page's dialogs give the scan field back: a scan typed after closing one is packed.

Seen on the floor page: F6, the sign-in dialog's Cancel button clicked with the mouse, then an
order scanned: the characters went into the scan field and vanished, and nothing was packed.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_station_truth import open_station, scan
from tests.e2e.conftest import Station


@pytest.mark.parametrize(
    ("key", "dialog", "cancel"),
    [("F6", "#packer-dialog", "#packer-cancel"), ("F4", "#reprint-dialog", "#reprint-cancel")],
)
def test_a_scan_after_a_dialog_closed_with_its_cancel_button_packs(
    page: Page, station: Station, key: str, dialog: str, cancel: str
) -> None:
    open_station(page, station)
    if key == "F4":  # Reprint needs a label to reprint: pack one first
        scan(page, "WEB-0001")
        expect(page.locator("#state-word")).to_have_text("PRINTED")
        station.set_weight(0, stable=True)
        station.set_weight(1300, stable=True)
    page.keyboard.press(key)
    expect(page.locator(dialog)).to_be_visible()
    page.locator(cancel).click()
    expect(page.locator(dialog)).to_be_hidden()
    expect(page.locator("#scan")).to_be_focused()
    scan(page, "WEB-0002")
    expect(page.locator("#state-order")).to_have_text("WEB-0002")
