"""The station page made for the floor, in a real Chromium against a real agent with mock devices.

A packer set up in the cloud signs in with their badge (a wrong PIN shows the agent's words), their
name and the shift's count follow their labels, and they sign out; each state has its own icon,
and WEIGHING and HELD stay far apart in colour, for deuteranopes and protanopes too; at 1366x768
(and 1920x1080) the scan field, the state panel and "Print wave" are above the fold; a sound plays
on PRINTED and on an error, and the mute toggle outlives a reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from bench.stack import wait_for
from tests.browser.conftest import screenshot
from tests.browser.test_station_truth import fault_printer, fix_printer, open_station, scan
from tests.e2e.conftest import Station

# Machado et al. (2009), severity 1, applied to linear RGB.
DEUTERANOPIA = (
    (0.367322, 0.860646, -0.227968),
    (0.280085, 0.672501, 0.047413),
    (-0.011820, 0.042940, 0.968881),
)
PROTANOPIA = (
    (0.152286, 1.052583, -0.204868),
    (0.114503, 0.786281, 0.099216),
    (-0.003882, -0.048116, 1.051998),
)

Rgb = tuple[float, float, float]


def rgb(css: str) -> Rgb:
    found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert found, css
    return (float(found[1]), float(found[2]), float(found[3]))


def _linear(c: float) -> float:
    c /= 255
    return c / 12.92 if c <= 0.04045 else float(((c + 0.055) / 1.055) ** 2.4)


def _encoded(v: float) -> float:
    v = min(max(v, 0.0), 1.0)
    return 255 * (12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055)


def simulate(colour: Rgb, matrix: tuple[Rgb, Rgb, Rgb]) -> Rgb:
    """`colour` as a person with that colour vision deficiency sees it."""
    lin = [_linear(c) for c in colour]
    r, g, b = (_encoded(sum(row[i] * lin[i] for i in range(3))) for row in matrix)
    return (r, g, b)


def distance(a: Rgb, b: Rgb) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5)


def test_the_colour_helpers_tell_the_old_oranges_apart_from_violet_and_amber() -> None:
    old_weighing, old_held = rgb("rgb(180, 83, 9)"), rgb("rgb(194, 65, 12)")  # the page before
    assert distance(old_weighing, old_held) < 30
    assert distance(simulate(old_weighing, DEUTERANOPIA), simulate(old_held, DEUTERANOPIA)) < 30
    assert simulate((255.0, 255.0, 255.0), DEUTERANOPIA) == pytest.approx((255, 255, 255), abs=1)
    with pytest.raises(AssertionError):
        rgb("transparent")


def panel(page: Page) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => ({
              state: document.body.dataset.state,
              icon: document.getElementById("state-icon").textContent,
              iconHidden: document.getElementById("state-icon").getAttribute("aria-hidden"),
              word: document.getElementById("state-word").textContent,
              background: getComputedStyle(document.getElementById("state-panel")).backgroundColor,
            })"""
        )
    )


def sounds(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__sounds"))


@pytest.fixture
def printer(station: Station) -> Iterator[Station]:
    yield station
    fix_printer(station)


def test_a_packer_signs_in_with_a_badge_their_labels_count_and_they_sign_out(
    page: Page, station: Station
) -> None:
    stack = station.stack
    packer = stack.admin_call(
        "POST", "/api/v1/warehouses/WH1/packers", {"name": "Mei Chen", "badge": "FLOOR-B1", "pin": "4826"}
    )
    # The packer reaches the agent with the cloud's next changes: signed in once there, then out.
    wait_for(
        lambda: (
            station.http.post("/api/v1/stations/S1/packer", json={"badge": "FLOOR-B1"}).status_code == 200
        ),
        timeout=30,
        what="the packer to reach the agent",
    )
    assert station.http.delete("/api/v1/stations/S1/packer").status_code == 200
    open_station(page, station)
    expect(page.locator("#packer-name")).to_have_text("No packer signed in")
    expect(page.locator("#shift")).to_be_hidden()

    page.keyboard.press("F6")
    expect(page.locator("#packer-dialog")).to_be_visible()
    expect(page.locator("#packer-badge")).to_be_focused()
    expect(page.locator("#packer-pin")).to_have_attribute("type", "password")  # a PIN is masked
    page.locator("#packer-pin").fill("9999")
    page.locator("#packer-pin").press("Enter")
    expect(page.locator("#packer-error")).to_contain_text("No packer of this warehouse has this")
    expect(page.locator("#packer-dialog")).to_be_visible()
    assert station.http.get("/api/v1/stations/S1/packer").json()["packer"] is None

    page.locator("#packer-badge").focus()
    scan(page, "FLOOR-B1")  # the badge scanner types it, then Enter
    expect(page.locator("#packer-dialog")).to_be_hidden()
    expect(page.locator("#packer-name")).to_have_text("Mei Chen")
    expect(page.locator("#shift")).to_have_text(re.compile(r"^0 labels · 0/h$"))
    expect(page.locator("#scan")).to_be_focused()
    assert station.http.get("/api/v1/stations/S1/packer").json()["packer"] == {
        "id": packer["id"],
        "name": "Mei Chen",
    }

    scan(page, "WEB-0001")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#shift")).to_have_text(re.compile(r"^1 label · \d+/h$"))
    screenshot(page, "station-packer-signed-in")

    # A reload keeps the packer (the agent has them) and the shift's count.
    page.reload()
    expect(page.locator("#packer-name")).to_have_text("Mei Chen")
    expect(page.locator("#shift")).to_have_text(re.compile(r"^1 label · "))
    page.keyboard.press("Alt+l")
    expect(page.locator("#shift")).to_have_text(re.compile(r"^1 张面单 · 每小时 \d+ 张$"))
    page.keyboard.press("Alt+l")

    page.locator("#sign-out").click()
    expect(page.locator("#packer-name")).to_have_text("No packer signed in")
    expect(page.locator("#sign-in")).to_be_visible()
    assert station.http.get("/api/v1/stations/S1/packer").json()["packer"] is None

    # A badge no scanner reads (a space inside) is refused with the agent's words; then the guessing
    # limit: after 5 wrong PINs the agent's 429 message shows, and nobody is signed in.
    page.keyboard.press("F6")
    page.locator("#packer-badge").fill("BAD BADGE")
    page.locator("#packer-badge").press("Enter")
    expect(page.locator("#packer-error")).not_to_be_empty()
    expect(page.locator("#packer-dialog")).to_be_visible()
    for attempt in range(5):
        page.locator("#packer-badge").fill("")
        page.locator("#packer-pin").fill(f"000{attempt}")
        page.locator("#packer-pin").press("Enter")
        expect(page.locator("#packer-error")).to_contain_text("No packer of this warehouse has this PIN")
        expect(page.locator("#packer-pin")).to_have_value("")  # a wrong PIN is not left on the screen
        page.evaluate("document.getElementById('packer-error').textContent = ''")
    page.locator("#packer-pin").fill("4826")  # the right PIN, too late
    page.locator("#packer-pin").press("Enter")
    expect(page.locator("#packer-error")).to_contain_text(
        "wrong badges or PINs at station S1 in the last minute"
    )
    expect(page.locator("#packer-name")).to_have_text("No packer signed in")
    assert station.http.get("/api/v1/stations/S1/packer").json()["packer"] is None
    page.keyboard.press("Escape")
    expect(page.locator("#packer-dialog")).to_be_hidden()


def test_each_state_has_its_icon_and_weighing_and_held_stand_apart(page: Page, printer: Station) -> None:
    station = printer
    open_station(page, station)
    expect(page.locator("body")).to_have_attribute("data-state", "ready")
    seen = {"ready": panel(page)}

    station.set_weight(700, stable=False)  # a parcel still settling: the order waits for it
    expect(page.locator("#weight-value")).to_have_text("0.700")
    expect(page.locator("#stable")).to_have_class("stable stable-no")
    scan(page, "WEB-0002")
    expect(page.locator("body")).to_have_attribute("data-state", "weighing")
    seen["weighing"] = panel(page)
    station.set_weight(1500, stable=True)
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    seen["printed"] = panel(page)

    scan(page, "NO-SUCH-ORDER")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    seen["error"] = panel(page)

    page.keyboard.press("Escape")
    fault_printer(station)
    expect(page.locator("body")).to_have_attribute("data-state", "fault")
    seen["fault"] = panel(page)
    expect(page.locator("#printers li.device-fault")).to_have_css("font-size", "22px")
    station.put_parcel()
    scan(page, "WEB-0003")
    expect(page.locator("body")).to_have_attribute("data-state", "held")
    seen["held"] = panel(page)
    screenshot(page, "station-held-amber")

    icons = {state: shown["icon"] for state, shown in seen.items()}
    assert all(icon.strip() for icon in icons.values()), icons
    assert len(set(icons.values())) == len(icons), icons
    assert all(shown["iconHidden"] == "true" and shown["word"] for shown in seen.values())

    weighing, held = rgb(seen["weighing"]["background"]), rgb(seen["held"]["background"])
    assert distance(weighing, held) > 100
    for matrix in (DEUTERANOPIA, PROTANOPIA):
        assert distance(simulate(weighing, matrix), simulate(held, matrix)) > 100
    backgrounds = {state: shown["background"] for state, shown in seen.items()}
    assert len(set(backgrounds.values())) == len(backgrounds), backgrounds


@pytest.mark.parametrize(("width", "height"), [(1366, 768), (1920, 1080)])
def test_the_scan_field_the_state_panel_and_print_wave_are_above_the_fold(
    page: Page, station: Station, width: int, height: int
) -> None:
    stack = station.stack
    wave = stack.admin_call(
        "POST", "/api/v1/waves", {"warehouse": "WH1", "station": "S1", "order_refs": ["WEB-0018", "WEB-0019"]}
    )
    page.set_viewport_size({"width": width, "height": height})
    open_station(page, station)
    # After a pack the Parcels card joins the side column too: Print wave stays in view.
    scan(page, "WEB-0016" if width < 1900 else "WEB-0017")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    expect(page.locator("#parcels-card")).to_be_visible()
    button = page.locator(f'#waves li[data-wave="{wave["id"]}"] button.print-wave')
    expect(button).to_be_visible()
    screenshot(page, f"station-{width}x{height}")
    for element in (button, page.locator("#scan"), page.locator("#state-word"), page.locator("#state-panel")):
        box = element.bounding_box()
        assert box is not None
        assert box["y"] >= 0, box
        assert box["y"] + box["height"] <= height, box
        assert box["x"] + box["width"] <= width, box
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_sound_plays_on_printed_and_on_an_error_and_the_mute_toggle_outlives_a_reload(
    page: Page, station: Station
) -> None:
    open_station(page, station)
    expect(page.locator("#mute")).to_have_attribute("aria-pressed", "false")
    scan(page, "WEB-0004")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    scan(page, "UNKNOWN-77")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    assert sounds(page) == [{"sound": "success", "played": True}, {"sound": "failure", "played": True}]

    page.locator("#mute").click()
    expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#mute-text")).to_have_text("Sound off")
    page.reload()
    expect(page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#mute-text")).to_have_text("Sound off")
    expect(page.locator("#scan")).to_be_focused()
    scan(page, "UNKNOWN-78")
    expect(page.locator("body")).to_have_attribute("data-state", "error")
    assert sounds(page) == [{"sound": "failure", "played": False}]

    page.locator("#mute").click()
    expect(page.locator("#mute-text")).to_have_text("Sound on")
    station.put_parcel()
    scan(page, "WEB-0005")
    expect(page.locator("body")).to_have_attribute("data-state", "printed")
    assert sounds(page)[-1] == {"sound": "success", "played": True}
