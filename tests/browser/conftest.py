"""Browser fixtures: Debian's Chromium driven by Playwright, against a real Dockside stack.

Never a downloaded browser: Playwright launches /usr/bin/chromium (`.ci/run` installs it).
Screenshots go to artifacts/ at the repository root, for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from bench.provision import provision
from bench.stack import Stack, running_stack
from tests.e2e.conftest import Station

CHROMIUM = os.environ.get("DOCKSIDE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread
    # until it stops, and later tests that call asyncio.run() must not find it there.
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a 1280x800 screenshot under artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """Warehouse WH1 with station S1 and 20 orders synced to the agent, shared by a module's tests.

    Tests use distinct orders and leave the devices and the cloud as they found them, so they
    pass in any order; a test that stops a part of the stack takes an `own_station`.
    """
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield from _provisioned(stack)


@pytest.fixture
def own_station(tmp_path: Path) -> Iterator[Station]:
    """A stack like `station`'s for one test alone: it may stop the cloud or break a device."""
    with running_stack(tmp_path / "stack") as stack:
        yield from _provisioned(stack)


def _provisioned(stack: Stack) -> Iterator[Station]:
    stack.start_cloud()
    stack.start_printer(serial="ZD421-WEB")
    stack.start_scale()
    stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
    provision(stack, order_count=20, order_prefix="WEB")
    stack.enroll_agent("WH1")
    stack.start_agent()
    s = Station(stack)
    s.wait_synced("WEB-0020")
    yield s
    s.http.close()
