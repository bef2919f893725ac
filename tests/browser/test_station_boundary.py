"""The agent's local API boundary in a real Chromium: what a hostile page can do, what the packer does.

A page served by another little HTTP server (another port, or another host name) auto-submits
the forms that printed labels before the boundary existed (`enctype="text/plain"`: a "simple"
request, no CORS preflight), while the packer's own station page is open in the same browser
with its session cookie. The mock printer must receive nothing. A DNS-rebinding name (mapped
to 127.0.0.1 by Chromium's resolver rules) reads no order. The station page itself still packs
and prints, keeps working across an agent restart, and a screen on another PC pairs with a code.
"""

from __future__ import annotations

import html
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bench.provision import provision
from bench.stack import restartable_address, running_stack, wait_for
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, screenshot
from tests.e2e.conftest import Station

REBOUND = "rebound.evil.test"  # a name the attacker controls, resolving to the agent's PC


class HostilePages:
    """A little web server for pages of another origin: GET /<name> answers the page registered so."""

    def __init__(self) -> None:
        pages: dict[str, bytes] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body or b"no such page")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def form(self, name: str, action: str, fields: dict[str, str]) -> None:
        """A page that posts `fields` as a text/plain form to `action` the moment it loads.

        A text/plain form sends `name=value`: the name carries a JSON object up to a last field
        whose `=` and value close it, so the body parses as the JSON the API wants."""
        body = json.dumps(fields)[:-1] + ', "x": "'
        self.pages[name] = (
            "<!doctype html><title>win a prize</title>"
            f'<form id="f" method="post" enctype="text/plain" action="{html.escape(action)}">'
            f'<input type="hidden" name="{html.escape(body)}" value="&quot;}}"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Its own Chromium: the rebinding name resolves to this PC, as an attacker's DNS would make it.
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """WH1 with station S1 and 20 orders; the agent listens on every interface (a LAN station)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        stack.start_cloud()
        stack.start_printer(serial="ZD421-BOUND")
        stack.start_scale()
        stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
        provision(stack, order_count=20, order_prefix="WEB")
        stack.enroll_agent("WH1")
        stack.start_agent(http=restartable_address("0.0.0.0"))  # one test restarts it on this port
        s = Station(stack)
        s.wait_synced("WEB-0020")
        yield s
        s.http.close()


@pytest.fixture
def hostile() -> Iterator[HostilePages]:
    pages = HostilePages()
    yield pages
    pages.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def _port(station: Station) -> int:
    return int(station.stack.agent_url().rsplit(":", 1)[1])


def open_station(page: Page, station: Station, base: str | None = None) -> None:
    station.set_weight(0, stable=True)
    station.set_weight(1234, stable=True)
    page.goto((base or station.stack.agent_url()) + "/?station=S1")
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("#weight-value")).to_have_text("1.234")


def scan(page: Page, barcode: str) -> None:
    page.keyboard.type(barcode, delay=5)
    page.keyboard.press("Enter")


def _job_of(station: Station, order_ref: str) -> object:
    answer = station.http.get(f"/api/v1/orders/{order_ref}")
    assert answer.status_code == 200, answer.text
    return answer.json()["job"]


@pytest.mark.parametrize("hostile_host", ["127.0.0.1", "localhost"])
def test_a_cross_origin_form_post_prints_nothing(
    page: Page, station: Station, hostile: HostilePages, hostile_host: str
) -> None:
    """The packer's station page is open (its cookie is in the browser); another page posts forms."""
    order = "WEB-0011" if hostile_host == "127.0.0.1" else "WEB-0012"
    open_station(page, station)
    printed = station.http.post(
        "/api/v1/pack", json={"order_ref": "WEB-0013", "station": "S1", "request_id": f"real-{order}"}
    )
    assert printed.status_code == 200, printed.text
    wait_for(lambda: station.labels(), timeout=10, what="the real label")
    job_id = printed.json()["job_id"]
    before = len(station.labels())
    agent = f"http://127.0.0.1:{_port(station)}"
    attacks = {
        "pack": (f"{agent}/api/v1/pack", {"order_ref": order, "station": "S1", "request_id": "evil"}),
        "reprint": (f"{agent}/api/v1/jobs/{job_id}/reprint", {"reason": "evil"}),
        "tare": (f"{agent}/api/v1/stations/S1/scale/tare", {}),
        "wave": (f"{agent}/api/v1/waves/1/print", {"station": "S1", "request_id": "evil-wave"}),
    }
    evil = page.context.new_page()
    for name, (action, fields) in attacks.items():
        hostile.form(name, action, fields)
        with evil.expect_navigation(url=action) as navigated:
            evil.goto(f"http://{hostile_host}:{hostile.port}/{name}")
        answer = navigated.value
        assert answer is not None
        assert answer.status == 403, (name, answer.status, answer.text())
        assert json.loads(answer.text())["error"]["code"] == "origin_not_allowed"
    # The refused requests never reached a route: no label, no job, the scale untouched.
    assert len(station.labels()) == before
    assert _job_of(station, order) is None
    assert station.status()["stations"][0]["scale"]["weight_g"] == 1234
    # The packer's own page still packs with its cookie (it never noticed).
    page.bring_to_front()
    station.set_weight(0, stable=True)
    station.set_weight(1500, stable=True)
    scan(page, "WEB-0014" if hostile_host == "127.0.0.1" else "WEB-0015")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the packer's label")


def test_a_rebinding_name_reads_no_order(page: Page, station: Station) -> None:
    answer = page.goto(f"http://{REBOUND}:{_port(station)}/api/v1/orders/WEB-0001")
    assert answer is not None
    assert answer.status == 403
    assert json.loads(answer.text())["error"]["code"] == "host_not_allowed"
    assert "Grace" not in answer.text()
    shell = page.goto(f"http://{REBOUND}:{_port(station)}/")
    assert shell is not None
    assert shell.status == 403  # not even the page shell: its session would come with it


def test_the_station_page_packs_with_an_httponly_cookie_and_survives_an_agent_restart(
    page: Page, station: Station
) -> None:
    open_station(page, station)
    cookies = page.context.cookies()
    [session] = [c for c in cookies if c["name"] == f"dockside_station_{_port(station)}"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert "dockside_station" not in page.evaluate("document.cookie")  # scripts cannot read it
    before = len(station.labels())
    scan(page, "WEB-0016")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the label")

    # The agent restarts (an update, a reboot): its sessions are gone; the page gets a new one.
    stack = station.stack
    stack.processes["agent"].stop()
    stack.start_agent(http=f"0.0.0.0:{_port(station)}")
    expect(page.locator("#agent-banner")).to_be_hidden(timeout=30_000)
    station.set_weight(0, stable=True)
    station.set_weight(1700, stable=True)
    expect(page.locator("#weight-value")).to_have_text("1.700")
    scan(page, "WEB-0017")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 2, timeout=10, what="the label after the restart")
    [renewed] = [c for c in page.context.cookies() if c["name"] == session["name"]]
    assert renewed["value"] != session["value"]


def test_a_screen_on_another_pc_pairs_with_a_code_then_packs(page: Page, station: Station) -> None:
    lan = _lan_url(station)
    station.set_weight(0, stable=True)
    station.set_weight(1234, stable=True)
    page.goto(lan + "/?station=S1")
    expect(page.locator("#pair-panel")).to_be_visible()
    expect(page.locator("main")).to_be_hidden()
    expect(page.locator("#pair-code")).to_be_focused()
    screenshot(page, "station-pairing")

    out = station.stack.run(
        ["dockside-agent", "pair-code", "--data-dir", str(station.stack.agent_dir("agent"))]
    )
    code = out.strip().splitlines()[-1]
    page.keyboard.type("WRON-GCOD")
    page.keyboard.press("Enter")
    expect(page.locator("#pair-error")).to_contain_text("not the pairing code")
    page.fill("#pair-code", code)
    page.keyboard.press("Enter")
    expect(page.locator("#pair-panel")).to_be_hidden()
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("#weight-value")).to_have_text("1.234")
    before = len(station.labels())
    scan(page, "WEB-0018")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    wait_for(lambda: len(station.labels()) == before + 1, timeout=10, what="the paired screen's label")
    # Paired for good: a reload needs no code.
    page.reload()
    expect(page.locator("#station-code")).to_have_text("S1")
    expect(page.locator("#pair-panel")).to_be_hidden()


def _lan_url(station: Station) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # picks the route's source address; sends nothing
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.fail("this machine has no non-loopback IPv4 address: the pairing test needs one")
    return f"http://{address}:{_port(station)}"
