"""PNG previews of template versions, rendered with their own sample data, and a cache per version.

The cloud serves `GET /api/v1/templates/{name}/versions/{n}/preview.png` from `PreviewCache`.
A version is immutable, so its preview never goes stale: the cache only bounds memory.

ZPL is drawn by Dockside's own renderer for the command subset templates may use
(`dockside.labels.zpl_raster`). The PyPI package zplkit renders ZPL well, but it is licensed
OSL-3.0, whose "external deployment" clause treats serving its output over a network as
distribution of the work, which a closed cloud cannot honour; it also refuses `^PQ` and some glyphs.
ESC/POS is drawn from the resolved operation list (`dockside.labels.escpos_raster`).

When a preview cannot show something exactly (a glyph the preview font lacks, copies by `^PQ`,
a barcode it cannot encode) the result carries a note; if drawing fails outright, the PNG lists
the label's fields as text with a note saying so, rather than failing the request.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from dockside.labels import VALIDATION_BUDGET, LabelLanguage, compile_template, validate_template
from dockside.labels.escpos_raster import characters_not_printable, draw_slip
from dockside.labels.escpos_template import EscposTemplate
from dockside.labels.zpl_fields import ZplLabel, read_labels
from dockside.labels.zpl_raster import draw_label

__all__ = ["PreviewCache", "PreviewResult", "render_preview_png"]

MAX_LABELS_SHOWN = 8
_GAP = 24


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """A preview PNG, its size in pixels (one per printer dot) and what it could not show."""

    png: bytes
    width: int
    height: int
    notes: tuple[str, ...] = ()
    fallback: bool = False

    @property
    def note(self) -> str | None:
        """All notes in one sentence list, or None when the preview is exact."""
        return " ".join(note.rstrip(".") + "." for note in self.notes) or None

    def headers(self) -> dict[str, str]:
        """HTTP headers for serving the PNG; the note travels ASCII-escaped in X-Preview-Note."""
        headers = {"Cache-Control": "private, max-age=86400"}
        if self.note:
            headers["X-Preview-Note"] = self.note.encode("ascii", "backslashreplace").decode("ascii")[:2000]
        if self.fallback:
            headers["X-Preview-Fallback"] = "1"
        return headers


def _png(image: Image.Image, dpi: int, notes: list[str]) -> bytes:
    info = PngInfo()
    if notes:
        info.add_itxt("Comment", " ".join(notes))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True, dpi=(dpi, dpi), pnginfo=info)
    return out.getvalue()


def _stack(images: list[Image.Image]) -> Image.Image:
    """Several labels one under another, on a grey backing like a strip of labels."""
    width = max(image.width for image in images)
    height = sum(image.height for image in images) + _GAP * (len(images) - 1)
    strip = Image.new("L", (width, height), 200)
    top = 0
    for image in images:
        strip.paste(image, (0, top))
        top += image.height + _GAP
    return strip


def _listing(title: str, lines: list[str], width: int, height: int) -> Image.Image:
    """The fallback preview: the label's fields as plain text on a label-sized card."""
    image = Image.new("L", (max(width, 400), max(height, 200)), 255)
    pen = ImageDraw.Draw(image)
    font = ImageFont.load_default(18)
    pen.rectangle([0, 0, image.width - 1, image.height - 1], outline=0, width=2)
    y = 10
    for line in [title, "", *lines]:
        if y > image.height - 24:
            break
        pen.text((10, y), line[:120], font=font, fill=0)
        y += 24
    return image


def _zpl_preview(label_bytes: bytes, width_dots: int, height_dots: int) -> tuple[Image.Image, list[str]]:
    labels: list[ZplLabel] = read_labels(label_bytes, width_dots=width_dots, height_dots=height_dots)
    images: list[Image.Image] = []
    notes: list[str] = []
    for label in labels[:MAX_LABELS_SHOWN]:
        image, label_notes = draw_label(label)
        images.append(image)
        notes.extend(note for note in label_notes if note not in notes)
    if len(labels) > 1:
        shown = (
            f"the first {MAX_LABELS_SHOWN} are shown" if len(labels) > MAX_LABELS_SHOWN else "all are shown"
        )
        notes.insert(0, f"the sample prints {len(labels)} label formats ({shown}, one under another)")
    return _stack(images), notes


def _escpos_preview(
    source: str, sample_data: Mapping[str, Any], width_dots: int
) -> tuple[Image.Image, list[str]]:
    compiled = compile_template(LabelLanguage.ESCPOS, source, width_dots=width_dots)
    assert isinstance(compiled, EscposTemplate)
    resolved = compiled.resolve(sample_data, VALIDATION_BUDGET)
    notes: list[str] = []
    missing = characters_not_printable(resolved, compiled.setup)
    if missing:
        notes.append(
            f"{len(missing)} character(s) are not in code page {compiled.setup.codepage} and print as '?' "
            f"({''.join(missing[:12])}): choose another codepage if they matter"
        )
    return draw_slip(resolved, compiled.setup), notes


def render_preview_png(
    language: str,
    source: str,
    sample_data: Mapping[str, Any],
    width_dots: int,
    height_dots: int,
    dpi: int = 203,
) -> PreviewResult:
    """Validate a template version and draw it with its sample data.

    Raises `dockside.errors.TemplateError` (HTTP 422) when the version does not validate; any
    failure while drawing a valid version gives a fallback PNG with a note instead.
    """
    label_bytes = validate_template(
        language, source, sample_data, width_dots=width_dots, height_dots=height_dots, dpi=dpi
    )
    try:
        if LabelLanguage(language) is LabelLanguage.ZPL:
            image, notes = _zpl_preview(label_bytes, width_dots, height_dots)
        else:
            image, notes = _escpos_preview(source, sample_data, width_dots)
        fallback = False
    except Exception as exc:  # a preview must degrade, never fail a valid version
        note = (
            f"the preview could not draw this label ({type(exc).__name__}: {str(exc)[:200]}); "
            "its content is listed instead. The template itself passed validation"
        )
        text = (
            label_bytes.decode("utf-8", "replace")
            if language == LabelLanguage.ZPL
            else repr(label_bytes[:4000])
        )
        image = _listing(
            "Preview unavailable: label content", text.splitlines()[:60], width_dots, height_dots
        )
        notes, fallback = [note], True
    png = _png(image, dpi, notes)
    return PreviewResult(png, image.width, image.height, tuple(notes), fallback)


class PreviewCache:
    """Rendered previews by template version; bounded by entries and bytes, least recently used first out.

    Keys are whatever identifies a version for the caller, e.g. `(tenant_id, name, version)`.
    Two requests for the same missing preview render it once.
    """

    def __init__(self, *, max_entries: int = 512, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries: OrderedDict[Hashable, PreviewResult] = OrderedDict()
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._rendering: dict[Hashable, threading.Lock] = {}
        self.renders = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable, render: Callable[[], PreviewResult]) -> PreviewResult:
        """The cached preview for `key`, rendering it with `render` on a miss."""
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                return cached
            key_lock = self._rendering.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    return cached
            try:
                result = render()
            except BaseException:
                with self._lock:
                    self._rendering.pop(key, None)
                raise
            with self._lock:
                self.renders += 1
                self._store(key, result)
                self._rendering.pop(key, None)
            return result

    def preview_version(self, key: Hashable, version: Mapping[str, Any]) -> PreviewResult:
        """The preview of a stored version body (language, source, sample_data, sizes and dpi)."""
        return self.get(
            key,
            lambda: render_preview_png(
                str(version["language"]),
                str(version["source"]),
                version.get("sample_data") or {},
                int(version["width_dots"]),
                int(version["height_dots"]),
                int(version.get("dpi", 203)),
            ),
        )

    def forget(self, key: Hashable) -> None:
        """Drop one entry (for a deleted version)."""
        with self._lock:
            removed = self._entries.pop(key, None)
            if removed is not None:
                self._bytes -= len(removed.png)

    def _store(self, key: Hashable, result: PreviewResult) -> None:
        if len(result.png) > self._max_bytes:
            return
        self._entries[key] = result
        self._bytes += len(result.png)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.png)
