"""The station page's dock mode: a toggle, and its words in English and 中文 alike.

Read from the files the agent serves (as `resources` ships them), checked by a JavaScript engine
(node, which the machine and CI have) rather than by pattern alone.
"""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources

DOCK_WORDS = {
    "dock_mode",
    "dock_label",
    "dock_help",
    "dock_ready",
    "s_handed",
    "s_already_handed",
    "s_handing",
    "handed_detail",
    "handed_todo",
    "already_handed_todo",
    "dock_error_todo",
}


def _static(name: str) -> str:
    return resources.files("edge_agent.http.web").joinpath("static", name).read_text("utf-8")


def test_the_dock_toggle_is_a_labelled_checkbox_and_the_page_calls_the_handover_endpoint() -> None:
    html = _static("index.html")
    assert re.search(r'<label class="toggle dock-toggle"><input id="dock" type="checkbox">', html)
    assert 'data-t="dock_mode"' in html
    script = _static("station.js")
    assert '"/api/v1/handover"' in script
    assert "?mode=dock" in script or 'get("mode")' in script


def test_every_word_of_the_page_exists_in_english_and_chinese() -> None:
    path = resources.files("edge_agent.http.web").joinpath("static", "i18n.js")
    program = (
        f"import({json.dumps('file://' + str(path))}).then((m) => {{"
        "const a = {carrier: 'ACME', tracking_number: 'T1', order_ref: 'O-1', parcel: 2};"
        "const s = {en: Object.keys(m.WORDS.en), zh: Object.keys(m.WORDS.zh),"
        " sample: [m.WORDS.en.handed_detail(a), m.WORDS.zh.handed_detail(a)]};"
        " console.log(JSON.stringify(s)); })"
    )
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, timeout=30, check=True)
    words = json.loads(out.stdout)
    assert set(words["en"]) == set(words["zh"])
    assert set(words["en"]) >= DOCK_WORDS
    assert words["sample"] == ["ACME T1 · order O-1, parcel 2", "ACME T1 · 订单 O-1，第 2 个包裹"]
    keys = set(re.findall(r'data-t="(\w+)"', _static("index.html")))
    assert keys <= set(words["en"])
