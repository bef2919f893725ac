"""Template previews: real PNGs of the shipped templates, clear notes, a graceful fallback, a cache."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

import cloud.labels.preview
from cloud.labels.preview import PreviewCache, PreviewResult, render_preview_png
from dockside.errors import TemplateError
from dockside.labels import load_shipped_template
from dockside.labels.zpl_raster import preview_font_has
from tests.dockside.hostile import HOSTILE, with_value

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _preview(name: str, sample: dict[str, Any] | None = None) -> PreviewResult:
    shipped = load_shipped_template(name)
    return render_preview_png(
        shipped.language,
        shipped.source,
        shipped.sample_data if sample is None else sample,
        shipped.width_dots,
        shipped.height_dots,
        shipped.dpi,
    )


def _image(result: PreviewResult) -> Image.Image:
    assert result.png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(result.png))
    assert image.size == (result.width, result.height)
    return image.convert("L")


def _dark(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    """The share of pixels in `box` that a thermal head would burn black."""
    region = image.crop(box) if box else image
    histogram = region.histogram()
    return sum(histogram[:128]) / max(1, sum(histogram))


def _bars(image: Image.Image, y: int, x0: int, x1: int) -> int:
    """How many dark bars a horizontal scan line crosses."""
    row = [image.getpixel((x, y)) < 128 for x in range(x0, x1)]  # type: ignore[operator]
    return sum(1 for before, now in itertools.pairwise(row) if now and not before)


def test_the_shipping_label_preview_looks_like_the_label() -> None:
    result = _preview("shipping-4x6")
    image = _image(result)

    assert (result.width, result.height) == (812, 1218)
    name = load_shipped_template("shipping-4x6").sample_data["ship_to"]["name"]
    if all(preview_font_has(char) for char in name):  # DejaVu has them; Pillow's fallback font does not
        assert result.notes == ()
    else:
        assert "not in the preview font" in (result.note or "")
    assert not result.fallback
    assert 0.03 < _dark(image) < 0.4
    assert _dark(image, (560, 25, 785, 130)) > 0.6  # carrier box, white text on black
    assert _dark(image, (20, 150, 792, 154)) > 0.95  # the rule under the ship-from block
    assert _dark(image, (400, 200, 790, 250)) < 0.01  # right of the recipient's name: paper
    assert _bars(image, 900, 40, 790) > 25  # the tracking Code 128
    assert 0.3 < _dark(image, (590, 566, 715, 691)) < 0.8  # the QR code
    assert _dark(image, (60, 204, 400, 254)) > 0.08  # the recipient's name in big type
    assert Image.open(io.BytesIO(result.png)).info["dpi"] == pytest.approx((203, 203), abs=1)


def test_the_sku_preview_shows_one_label_per_line_with_copies_noted() -> None:
    result = _preview("sku-2x1")
    image = _image(result)
    lines = load_shipped_template("sku-2x1").sample_data["lines"]

    assert result.width == 406
    assert result.height == 203 * len(lines) + 24 * (len(lines) - 1)
    for index in range(len(lines)):
        top = index * (203 + 24)
        assert _dark(image, (0, top, 406, top + 203)) > 0.05
        assert _bars(image, top + 100, 16, 400) > 15
    assert "the sample prints 3 label formats" in (result.note or "")
    assert "prints 3 copies of this label (^PQ3)" in (result.note or "")


def test_the_packing_slip_preview_is_a_receipt() -> None:
    result = _preview("packing-slip")
    image = _image(result)

    assert result.width == 576
    assert 1000 < result.height <= 4000
    assert result.notes == ()
    assert 0.03 < _dark(image) < 0.4
    assert _dark(image, (130, 0, 446, 64)) > 0.2  # the logo
    assert max(_bars(image, y, 0, 576) for y in range(result.height // 2, result.height)) > 20  # Code 128


def test_glyphs_the_preview_font_lacks_are_named_in_a_note() -> None:
    sample = with_value(
        load_shipped_template("shipping-4x6").sample_data, ("ship_to", "name"), HOSTILE["cjk"]
    )
    result = _preview("shipping-4x6", sample)

    assert not result.fallback
    assert "not in the preview font and show as boxes" in (result.note or "")
    assert "東" in (result.note or "")
    assert all(ord(char) < 128 for char in result.headers()["X-Preview-Note"])
    assert _dark(_image(result)) > 0.03


def test_characters_a_slips_code_page_lacks_are_named_in_a_note() -> None:
    sample = with_value(load_shipped_template("packing-slip").sample_data, ("ship_to", "name"), "Zoë 🙂 東京")
    result = _preview("packing-slip", sample)
    assert "not in code page CP858 and print as '?'" in (result.note or "")


def test_hostile_data_previews_without_breaking_the_layout() -> None:
    for name, value in HOSTILE.items():
        sample = with_value(load_shipped_template("shipping-4x6").sample_data, ("ship_to", "street"), value)
        result = _preview("shipping-4x6", sample)
        assert (result.width, result.height) == (812, 1218), name
        assert not result.fallback, f"{name}: {result.note}"


def test_a_label_the_preview_cannot_draw_falls_back_to_a_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(label: Any) -> Any:
        raise RuntimeError("font file vanished")

    monkeypatch.setattr(cloud.labels.preview, "draw_label", broken)
    result = _preview("shipping-4x6")
    image = _image(result)

    assert result.fallback
    assert "could not draw this label (RuntimeError: font file vanished)" in (result.note or "")
    assert "passed validation" in (result.note or "")
    assert result.headers()["X-Preview-Fallback"] == "1"
    assert (result.width, result.height) == (812, 1218)
    assert _dark(image) > 0.005


def test_an_invalid_version_is_refused_not_previewed() -> None:
    with pytest.raises(TemplateError) as caught:
        render_preview_png("zpl", "^XA^FO900,10^FDx^FS^XZ", {}, 812, 1218)
    assert caught.value.http_status == 422


class _CountingRender:
    """A render function that counts its calls and can be held until released."""

    def __init__(self, result: PreviewResult) -> None:
        self.result = result
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def __call__(self) -> PreviewResult:
        self.calls += 1
        assert self.release.wait(10), "render was never released"
        return self.result


def _result(size: int) -> PreviewResult:
    return PreviewResult(b"x" * size, 1, 1)


def test_the_cache_renders_a_version_once_and_evicts_the_least_recently_used() -> None:
    cache = PreviewCache(max_entries=2)
    first, second, third = (
        _CountingRender(_result(10)),
        _CountingRender(_result(10)),
        _CountingRender(_result(10)),
    )

    assert cache.get(("t1", "shipping-4x6", 1), first) is first.result
    assert cache.get(("t1", "shipping-4x6", 1), first) is first.result
    cache.get(("t1", "shipping-4x6", 2), second)
    cache.get(("t1", "shipping-4x6", 1), first)  # now the most recently used
    cache.get(("t1", "sku-2x1", 1), third)  # evicts version 2
    cache.get(("t1", "shipping-4x6", 2), second)

    assert (first.calls, second.calls, third.calls) == (1, 2, 1)
    assert len(cache) == 2
    assert cache.renders == 4


def test_the_cache_is_bounded_in_bytes_and_can_forget() -> None:
    cache = PreviewCache(max_entries=100, max_bytes=25)
    for version in range(3):
        cache.get(version, _CountingRender(_result(10)))
    assert len(cache) == 2
    cache.forget(2)
    assert len(cache) == 1
    cache.get("huge", _CountingRender(_result(100)))
    assert len(cache) == 1


def test_a_failed_render_is_not_cached() -> None:
    cache = PreviewCache()

    def failing() -> PreviewResult:
        raise TemplateError("broken", code="invalid_zpl")

    with pytest.raises(TemplateError):
        cache.get("v1", failing)
    render = _CountingRender(_result(5))
    assert cache.get("v1", render) is render.result


class _WatchedRendering(dict[Any, threading.Lock]):
    """The cache's in-flight table, counting the requests that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals = 0
        self.guard = threading.Lock()

    def setdefault(self, key: Any, default: threading.Lock) -> threading.Lock:
        with self.guard:
            self.arrivals += 1
        return super().setdefault(key, default)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.005)


def test_concurrent_requests_for_one_missing_preview_render_it_once() -> None:
    cache = PreviewCache()
    watched = _WatchedRendering()
    cache._rendering = watched
    render = _CountingRender(_result(10))
    render.release.clear()
    results: list[PreviewResult] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("v1", render))) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(
            lambda: watched.arrivals == 4 and render.calls == 1, "all four requests to wait on one render"
        )
    finally:
        render.release.set()
        for thread in threads:
            thread.join(10)
    assert render.calls == 1
    assert results == [render.result] * 4


def test_preview_version_reads_a_stored_version_body() -> None:
    shipped = load_shipped_template("sku-2x1")
    body = json.loads(json.dumps({**shipped.version_body(), "name": "sku-2x1", "version": 3, "active": True}))
    cache = PreviewCache()

    result = cache.preview_version((1, "sku-2x1", 3), body)

    assert result.width == 406
    assert cache.preview_version((1, "sku-2x1", 3), body) is result
    assert cache.renders == 1
