"""The station page tells the truth, in a real Chromium against a real agent with mock devices.

READY only when the station can print (a faulted printer says what to do, before any scan and
after a reload); held labels are a list read from the agent, each announced once it prints and
never shown as printed while held; scans typed during a pack wait their turn; an unknown or
cancelled order answers without asking for a parcel; a scan no barcode could be is refused with
the page's width intact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from bench.stack import wait_for
from tests.browser.conftest import screenshot
from tests.e2e.conftest import Station

# Every value `body[data-state]` takes, in order, from the page's first script on (survives reloads
# as a fresh list: each load starts its own).
RECORD_STATES = """
window.__states = [];
new MutationObserver(() => {
  const state = document.body && document.body.dataset.state;
  if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
}).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-state"] });
"""


def _printer(station: Station) -> dict[str, Any]:
    return dict(station.status()["stations"][0]["printers"][0])


def fault_printer(station: Station, fault: str = "paper_out") -> None:
    """Put the station's only printer in `fault` and wait until the agent has seen it."""
    station.stack.control("printer", "POST", "/fault", {"fault": fault})
    wait_for(lambda: _printer(station)["state"] != "ready", timeout=15, what=f"the agent to see {fault}")


def fix_printer(station: Station) -> None:
    station.stack.control("printer", "POST", "/fault", {"fault": "none"})


@pytest.fixture
def printer(station: Station) -> Iterator[Station]:
    """The station, whose printer is ready again, with no label held, once the test is over."""
    yield station
    fix_printer(station)
    wait_for(
        lambda: _printer(station)["state"] == "ready" and _printer(station)["held_jobs"] == 0,
        timeout=20,
        what="the printer ready with nothing held",
    )


def open_station(page: Page, station: Station, *, grams: int = 1234) -> None:
    """Open the page with a fresh parcel on the scale (a weight serves one parcel)."""
    station.set_weight(0, stable=True)
    station.set_weight(grams, stable=True)
    page.add_init_script(RECORD_STATES)
    page.goto(station.stack.agent_url() + "/?station=S1")
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("#weight-value")).to_have_text(f"{grams / 1000:.3f}")
    expect(page.locator("#scan")).to_be_focused()


def scan(page: Page, barcode: str) -> None:
    """What a keyboard-wedge scanner does: type the barcode's characters, then Enter."""
    page.keyboard.type(barcode, delay=5)
    page.keyboard.press("Enter")


def states(page: Page) -> list[str]:
    return list(page.evaluate("window.__states"))


def printed_refs(station: Station, since: int) -> list[str]:
    """The order reference on each label the printer printed after its first `since` ones."""
    refs = []
    for label in station.labels()[since:]:
        found = re.search(r"\bWEB-[0-9]{4}\b", label["data"])
        refs.append(found.group() if found else label["data"][:80])
    return refs


def expect_fault_panel(page: Page) -> None:
    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "fault")
    expect(page.locator("#state-word")).to_have_text("PRINTER FAULT")
    expect(page.locator("#state-detail")).to_contain_text("is out of labels: load labels")
    expect(page.locator("#state-todo")).to_contain_text("Fix the printer")


def expect_printer_card_fault(page: Page) -> None:
    """The printers card shows the fault (today's page did that too): the agent's snapshot has it."""
    expect(page.locator("#printers .badge-fault")).to_be_visible()


def test_a_faulted_printer_is_never_ready_before_a_scan_nor_after_a_reload(
    page: Page, printer: Station
) -> None:
    station = printer
    fault_printer(station)
    open_station(page, station)
    expect_fault_panel(page)
    assert "ready" not in states(page)
    screenshot(page, "station-printer-fault")

    page.reload()
    expect(page.locator("#station-code")).to_have_text("S1")
    expect_fault_panel(page)
    assert "ready" not in states(page)

    fix_printer(station)
    expect(page.locator("body")).to_have_attribute("data-state", "ready", timeout=20_000)
    expect(page.locator("#state-word")).to_have_text("READY")

    # A fault that comes after a scan replaces its PRINTED with what to do now.
    scan(page, "WEB-0019")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    fault_printer(station)
    expect_fault_panel(page)
    expect(page.locator("#recent li.recent-printed").first).to_contain_text("WEB-0019")


def test_a_held_reprint_is_never_shown_printed_and_is_announced_when_it_prints(
    page: Page, printer: Station
) -> None:
    station = printer
    open_station(page, station)
    before = len(station.labels())
    scan(page, "WEB-0001")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the label")

    fault_printer(station)
    expect_printer_card_fault(page)
    seen_before_reprint = len(states(page))
    page.keyboard.press("F4")
    expect(page.locator("#reprint-dialog")).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    expect(page.locator("#state-order")).to_have_text("WEB-0001")
    held = page.locator("#held li.held-item")
    expect(held).to_have_count(1)
    expect(held.first).to_contain_text("WEB-0001")
    expect(held.first).to_contain_text("Reprint")
    expect(held.first).to_contain_text("out of labels")
    assert "printed" not in states(page)[seen_before_reprint:]
    assert len(station.labels()) == before + 1

    fix_printer(station)
    expect(page.locator("body")).to_have_attribute("data-state", "printed", timeout=20_000)
    expect(page.locator("#state-order")).to_have_text("WEB-0001")
    expect(page.locator("#recent li.recent-printed").first).to_contain_text("↻")
    expect(page.locator("#held-card")).to_be_hidden()
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="the reprinted label")


def test_two_held_labels_are_both_announced_and_both_in_recent_labels(page: Page, printer: Station) -> None:
    station = printer
    open_station(page, station)
    before = len(station.labels())
    fault_printer(station)
    expect_printer_card_fault(page)

    scan(page, "WEB-0002")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    station.put_parcel()
    scan(page, "WEB-0003")
    expect(page.locator("#state-order")).to_have_text("WEB-0003")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    recent = page.locator("#recent li")
    expect(recent.filter(has_text="WEB-0002")).to_have_count(0)  # a held label is not printed
    expect(recent.filter(has_text="WEB-0003")).to_have_count(0)
    screenshot(page, "station-two-held")

    fix_printer(station)
    expect(recent.filter(has_text="WEB-0002")).to_have_count(1, timeout=20_000)
    expect(recent.filter(has_text="WEB-0003")).to_have_count(1)
    expect(recent.nth(0)).to_contain_text("WEB-0003")  # newest first, each announced in turn
    expect(recent.nth(1)).to_contain_text("WEB-0002")
    expect(page.locator("#recent li.recent-failed")).to_have_count(0)
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-order")).to_have_text("WEB-0003")
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="both held labels")
    assert printed_refs(station, before) == ["WEB-0002", "WEB-0003"]


def test_a_reload_keeps_the_held_list_and_announces_each_label_when_it_prints(
    page: Page, printer: Station
) -> None:
    station = printer
    open_station(page, station)
    fault_printer(station)
    expect_printer_card_fault(page)
    scan(page, "WEB-0004")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    station.put_parcel()
    scan(page, "WEB-0011")
    expect(page.locator("#state-order")).to_have_text("WEB-0011")
    expect(page.locator("body")).to_have_attribute("data-state", "held")

    page.reload()
    expect(page.locator("#station-code")).to_have_text("S1")
    items = page.locator("#held li.held-item")
    expect(items).to_have_count(2)
    expect(page.locator("#held-count")).to_have_text("2")
    expect(items.nth(0)).to_contain_text("WEB-0004")  # oldest first
    expect(items.nth(1)).to_contain_text("WEB-0011")
    expect(items.first).to_contain_text("shipping label")
    expect(items.first).to_contain_text("since ")
    expect(items.first).to_contain_text("load labels")
    expect_fault_panel(page)  # after a reload the page knows the fault, not the last scan
    screenshot(page, "station-held-after-reload")

    page.keyboard.press("Alt+l")  # the list's own words follow the language
    expect(items.first).to_contain_text("运单面单")
    page.keyboard.press("Alt+l")

    fix_printer(station)
    expect(page.locator("body")).to_have_attribute("data-state", "printed", timeout=20_000)
    expect(page.locator("#state-order")).to_have_text("WEB-0011")
    expect(page.locator("#state-todo")).to_contain_text("held label printed")
    printed = page.locator("#recent li.recent-printed")
    expect(printed).to_have_count(2)
    expect(printed.nth(0)).to_contain_text("WEB-0011")
    expect(printed.nth(1)).to_contain_text("WEB-0004")
    expect(page.locator("#held-card")).to_be_hidden()


def test_two_scans_typed_fast_are_both_packed_in_order(page: Page, printer: Station) -> None:
    station = printer
    open_station(page, station)
    before = len(station.labels())
    # A scanner types both before the first pack is answered: the page's script gets both Enters
    # in one go, as it does when the agent takes a moment.
    page.evaluate(
        """(refs) => {
          const field = document.getElementById("scan");
          for (const ref of refs) {
            field.value = ref;
            field.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
          }
        }""",
        ["WEB-0005", "WEB-0006"],
    )
    # The first took the parcel on the scale; the second waits for its own parcel, not lost.
    expect(page.locator("#state-order")).to_have_text("WEB-0006")
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    expect(page.locator("#recent li").first).to_contain_text("WEB-0005")
    expect(page.locator("#queue-box")).to_be_hidden()

    station.put_parcel()
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#state-order")).to_have_text("WEB-0006")
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="both labels")
    assert printed_refs(station, before) == ["WEB-0005", "WEB-0006"]
    recent = page.locator("#recent li.recent-printed")
    expect(recent.nth(0)).to_contain_text("WEB-0006")
    expect(recent.nth(1)).to_contain_text("WEB-0005")


def test_scans_during_a_weighing_wait_in_the_queue_and_esc_clears_them(page: Page, printer: Station) -> None:
    station = printer
    open_station(page, station)
    station.set_weight(900, stable=False)  # a parcel still settling: the order waits for it
    expect(page.locator("#weight-value")).to_have_text("0.900")
    expect(page.locator("#stable")).to_have_class("stable stable-no")  # the page knows it settles
    scan(page, "WEB-0007")
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    scan(page, "WEB-0008")
    scan(page, "WEB-0009")
    expect(page.locator("#state-order")).to_have_text("WEB-0007")  # not replaced by a later scan
    expect(page.locator("#queue li")).to_have_text(["WEB-0008", "WEB-0009"])
    page.keyboard.press("Escape")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#queue-box")).to_be_hidden()
    assert station.http.get("/api/v1/orders/WEB-0007").json()["job"] is None


def test_an_unknown_or_cancelled_order_answers_at_once_without_weighing(page: Page, printer: Station) -> None:
    station = printer
    station.stack.admin_call(
        "POST", "/api/v1/orders/WEB-0020/cancel", {"reason": "customer changed their mind"}
    )
    wait_for(
        lambda: station.http.get("/api/v1/orders/WEB-0020").json()["state"] == "cancelled",
        timeout=30,
        what="the cancel to reach the agent",
    )
    open_station(page, station)
    station.set_weight(2100, stable=False)  # no parcel ready: asking for one would be the wrong answer
    expect(page.locator("#weight-value")).to_have_text("2.100")
    expect(page.locator("#stable")).to_have_class("stable stable-no")

    scan(page, "NOPE-9999")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#state-detail")).to_contain_text("This order is not known at this station")
    failed = page.locator("#recent li.recent-failed").first
    expect(failed).to_contain_text("NOPE-9999")
    expect(failed).to_contain_text("not printed")

    scan(page, "WEB-0020")
    expect(page.locator("#state-order")).to_have_text("WEB-0020")
    expect(page.locator("#state-detail")).to_have_text("This order was cancelled: do not ship it.")
    expect(page.locator("#state-todo")).to_contain_text("Set the parcel aside")
    assert "weighing" not in states(page)
    assert "printing" not in states(page)  # nothing was even sent to print


def test_the_last_orders_buttons_hide_while_the_panel_names_another(page: Page, printer: Station) -> None:
    """Reprint, Add parcel and Close order act on the last order packed. On the CHECK screen of an
    unknown scan they would reprint or close an order the panel does not name."""
    station = printer
    open_station(page, station)
    scan(page, "WEB-0015")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    for button in ("#reprint", "#add-parcel", "#close"):
        expect(page.locator(button)).to_be_visible()

    scan(page, "NOPE-0015")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#state-order")).to_have_text("NOPE-0015")
    for button in ("#reprint", "#add-parcel", "#close"):
        expect(page.locator(button)).to_be_hidden()

    # Back to READY, which names no order: the last order's buttons are there again.
    page.keyboard.press("Escape")
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    expect(page.locator("#reprint")).to_contain_text("parcel 1")
    expect(page.locator("#add-parcel")).to_be_visible()


def test_a_scan_no_barcode_could_be_is_refused_and_the_page_keeps_its_width(
    page: Page, printer: Station
) -> None:
    station = printer
    open_station(page, station)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/api/v1/" in request.url else None)

    def width_holds() -> None:
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.fill("#scan", "WEB-" + "9" * 4996)
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#state-detail")).to_contain_text("This scan has 5000 characters")
    expect(page.locator("#scan-note")).to_contain_text("5000 characters")
    width_holds()

    page.fill("#scan", "WEB-0010\u0007\u001b[2J")
    page.keyboard.press("Enter")
    expect(page.locator("#state-detail")).to_contain_text("control characters")
    width_holds()
    assert not [url for url in asked if "/pack" in url or "/orders/" in url]  # refused on the page

    # A long reference within the limit goes to the agent; its answer wraps in the panel.
    long_ref = "NOPE-" + "X" * 123
    page.fill("#scan", long_ref)
    page.keyboard.press("Enter")
    expect(page.locator("#state-order")).to_contain_text("NOPE-XXXX")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    expect(page.locator("#recent li.recent-failed").first).to_contain_text("NOPE-XXXX")
    width_holds()
    page.keyboard.press("Alt+l")
    width_holds()
    screenshot(page, "station-long-scan")
    page.keyboard.press("Alt+l")

    # The page still packs the next real scan.
    scan(page, "WEB-0010")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#scan-note")).to_be_hidden()
