"""The admin console in a real browser: an admin publishes a template version, a viewer cannot."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from bench.demo_data import SHIP_FROM, demo_orders
from bench.provision import ingest_orders, publish_template, shipped_template
from bench.stack import Stack, running_stack
from dockside.labels.shipped import shipped_template_names
from tests.browser.conftest import screenshot

PREVIEW_SHOWN = "() => { const i = document.getElementById('preview'); return i && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A cloud with warehouse WH1, every shipped template live at v1 and a v2 draft of the first."""
    with running_stack(tmp_path_factory.mktemp("console")) as stack:
        stack.start_cloud()
        stack.admin_call(
            "POST", "/api/v1/warehouses", {"code": "WH1", "name": "Warehouse WH1", "ship_from": SHIP_FROM}
        )
        for name in shipped_template_names():
            publish_template(stack, name)
        first = shipped_template_names()[0]
        stack.admin_call("POST", f"/api/v1/templates/{first}/versions", shipped_template(first))
        ingest_orders(stack, demo_orders(3, prefix="CON"))
        yield stack


def token(stack: Stack, role: str) -> str:
    create = ["dockside-cloud", "create-token", "--role", role, "--name", f"{role} in test"]
    out = stack.run([*create, "--database-url", stack.database_url])
    return out.strip().splitlines()[-1].strip()


def sign_in(page: Page, stack: Stack, secret: str) -> None:
    page.goto(f"http://{stack.cloud.ready['http']}/")
    expect(page.locator("#token")).to_be_focused()
    page.fill("#token", secret)
    page.keyboard.press("Enter")
    expect(page.locator("#app")).to_be_visible()


def test_an_admin_publishes_a_template_version_and_sees_its_preview(page: Page, cloud: Stack) -> None:
    name = shipped_template_names()[0]
    sign_in(page, cloud, cloud.admin_token)
    expect(page.locator("#who-role")).to_have_text("admin")
    expect(page.locator("tbody tr").first).to_contain_text(name)
    screenshot(page, "console-templates")
    page.click(f"text={name}")
    expect(page.locator("#main h1")).to_have_text(name)
    publish = page.locator('button[data-publish="2"]')
    expect(publish).to_have_text("Publish v2")
    publish.click()
    expect(page.locator("#toast")).to_contain_text(f"{name} v2 is live")
    expect(page.locator("tr.selected")).to_contain_text("live")
    page.wait_for_function(PREVIEW_SHOWN)
    versions = cloud.admin_call("GET", f"/api/v1/templates/{name}/versions")["versions"]
    assert [v["version"] for v in versions if v["active"]] == [2]
    # v1 is now a rollback, offered as such.
    expect(page.locator('button[data-publish="1"]')).to_have_text("Roll back to v1")
    screenshot(page, "console-template-published")
    page.click("text=Audit log")
    expect(page.locator("#main tbody tr").first).to_contain_text("publish template version")
    expect(page.locator("#main tbody tr").first).to_contain_text(f"template {name}")


def test_a_viewer_sees_no_edit_buttons_and_the_api_refuses_it(page: Page, cloud: Stack) -> None:
    name = shipped_template_names()[0]
    viewer = token(cloud, "viewer")
    sign_in(page, cloud, viewer)
    expect(page.locator("#who-role")).to_have_text("viewer")
    page.goto(f"http://{cloud.cloud.ready['http']}/console/#/templates/{name}")
    expect(page.locator("#main h1")).to_have_text(name)
    page.wait_for_function(PREVIEW_SHOWN)
    expect(page.locator("button[data-publish]")).to_have_count(0)
    screenshot(page, "console-viewer")
    answer = httpx.post(
        f"http://{cloud.cloud.ready['http']}/api/v1/templates/{name}/versions/1/publish",
        headers={"Authorization": f"Bearer {viewer}"},
    )
    assert answer.status_code == 403
    assert "viewer" in answer.json()["error"]["message"]
    page.click("text=Rulesets")
    expect(page.locator("#ruleset-editor")).to_have_attribute("readonly", "")


def test_fleet_and_order_pages(page: Page, cloud: Stack) -> None:
    sign_in(page, cloud, cloud.admin_token)
    page.click("text=Fleet")
    expect(page.locator("#main h1")).to_have_text("Fleet")
    page.click("text=Orders")
    page.fill("#order-search", "CON-0002")
    page.keyboard.press("Enter")
    expect(page.locator(".timeline")).to_contain_text("order created")
    screenshot(page, "console-order")
