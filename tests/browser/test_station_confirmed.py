"""Printed means printed, in a real Chromium against a real agent and mock printer: after a scan the
panel says PRINTING until the printer confirms the label, PRINTED ✓ only then, HELD with the fix
when the printer faults with the label inside, and SENT (check the label) when the printer never
confirms it; such a label is never shown as PRINTED ✓.

The agent here gives a printer 3 s to confirm (DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S) instead of 30.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.stack import running_stack, wait_for
from tests.browser.conftest import _provisioned, screenshot
from tests.browser.test_station_truth import open_station, scan, states
from tests.e2e.conftest import Station

CONFIRM_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    env = {"DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S": str(CONFIRM_TIMEOUT_S)}
    with running_stack(Path(tmp_path_factory.mktemp("stack")), env=env) as stack:
        yield from _provisioned(stack)


@pytest.fixture
def printer(station: Station) -> Iterator[Station]:
    """The station; its printer confirms at once with no fault again once the test is over."""
    yield station
    station.stack.control("printer", "POST", "/confirm", {"mode": "at_once"})
    station.stack.control("printer", "POST", "/fault", {"fault": "none"})
    wait_for(
        lambda: station.status()["stations"][0]["printers"][0]["state"] == "ready",
        timeout=20,
        what="the printer ready again",
    )


def test_a_delayed_confirmation_goes_printing_then_printed(page: Page, printer: Station) -> None:
    printer.stack.control("printer", "POST", "/confirm", {"mode": "delay", "delay_s": 1.5})
    open_station(page, printer, grams=1301)

    scan(page, "WEB-0011")

    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "printing")
    expect(page.locator("#state-word")).to_have_text("PRINTING")
    expect(page.locator("#state-order")).to_contain_text("WEB-0011")
    assert "printed" not in states(page)  # the label sits in the printer's buffer
    screenshot(page, "station-printing-unconfirmed")
    expect(body).to_have_attribute("data-state", "printed", timeout=10_000)
    expect(page.locator("#state-word")).to_have_text("PRINTED")
    expect(page.locator("#state-icon")).to_have_text("✓")
    seen = states(page)
    assert seen.index("printing") < seen.index("printed")
    expect(page.locator("#recent li.recent-printed").first).to_contain_text("WEB-0011")


def test_a_fault_after_the_printer_took_the_label_turns_to_held_and_is_announced_once_printed(
    page: Page, printer: Station
) -> None:
    printer.stack.control("printer", "POST", "/confirm", {"mode": "fault_after_accept"})
    open_station(page, printer, grams=1302)

    scan(page, "WEB-0012")

    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "held", timeout=10_000)
    expect(page.locator("#state-detail")).to_contain_text("load labels")
    assert "printed" not in states(page)
    screenshot(page, "station-held-after-send")

    printer.stack.control("printer", "POST", "/fault", {"fault": "none"})

    expect(body).to_have_attribute("data-state", "printed", timeout=20_000)
    expect(page.locator("#state-order")).to_contain_text("WEB-0012")
    labels = [label for label in printer.labels() if "WEB-0012" in label["data"]]
    assert len(labels) == 1  # printed from the printer's buffer, never sent again


def test_a_label_whose_printer_never_confirms_is_never_shown_printed(page: Page, printer: Station) -> None:
    # The label waits in the buffer far longer than the agent waits for the printer's word.
    printer.stack.control("printer", "POST", "/confirm", {"mode": "delay", "delay_s": 120})
    open_station(page, printer, grams=1303)

    scan(page, "WEB-0013")

    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "sent", timeout=(CONFIRM_TIMEOUT_S + 10) * 1000)
    expect(page.locator("#state-word")).to_have_text("SENT")
    expect(page.locator("#state-todo")).to_contain_text("Check that the label came out")
    expect(page.locator("#state-detail")).to_contain_text("could not confirm")
    expect(page.locator("#reprint")).to_be_visible()
    expect(page.locator("#recent li.recent-sent").first).to_contain_text("WEB-0013")
    screenshot(page, "station-sent-unconfirmed")
    page.wait_for_timeout(1000)
    assert "printed" not in states(page)

    # A reload does not make it printed either.
    page.reload()
    expect(page.locator("#station-code")).to_have_text("S1")
    assert "printed" not in states(page)
