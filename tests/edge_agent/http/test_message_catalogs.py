"""Every code the agent can send to the station page has an entry in every catalog of the page.

The codes are collected from the source, not from a list kept by hand: each `code="..."` given to
an error, each error class's `code = "..."`, each `{"code": "..."}` the station snapshot builds
(printer states, held reasons), the codes the HTTP layers answer with by themselves (unknown
path, too large a body, a refused origin...) and the printer fault codes the page words
(`fault_<code>`). A new code without its words in English, 简体中文 and Español fails here.

The catalogs are read by node, as the browser reads them (ES modules), so a catalog that does not
load fails too. Each entry is then rendered with sample params: never empty, never "undefined",
and the Chinese and Spanish ones with no English word left.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dockside.http_errors import STATUS_ERRORS
from edge_agent.devices.escpos_printer import RECEIPT_ADVICE
from edge_agent.devices.printer import PRINTER_FAULTS

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "edge_agent" / "http" / "web" / "static"
LANGS = ("en", "zh", "es")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# Calls that take an error code as a plain argument, and its position.
_CODE_ARGS = {"send_error": 2, "raw_error_response": 2, "error_response": 1, "error_body": 0, "_Refusal": 1}
# Common English words that no Spanish sentence of the catalog should hold.
_ENGLISH = frozenset(
    re.findall(
        r"\w+",
        "the and is are to of your this that check scan order label printer please again with not wait "
        "ask put press then it has was cannot scale parcel waits for from at or on be its",
    )
)
# Words a packer reads as they are in any language: units, device and brand names, key caps.
_KEPT_WORDS = {"kg", "lb", "PIN", "PAUSE", "Dockside", "SSCC", "IT", "Esc", "F2", "F4"}


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE.match(node.value):
        return node.value
    return None


def codes_in(tree: ast.AST) -> set[str]:
    """The message codes a module's source names (see the module docstring)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            found.add(_literal(node.value) or "")
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and [
                    getattr(target, "id", None) for target in statement.targets
                ] == ["code"]:
                    found.add(_literal(statement.value) or "")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code":
                    found.add(_literal(value) or "")
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = _CODE_ARGS.get(str(name))
            if position is not None and len(node.args) > position:
                found.add(_literal(node.args[position]) or "")
    return found - {""}


def agent_codes() -> set[str]:
    """Every code the agent (and the shared dockside package it runs) can send to the page."""
    codes: set[str] = set()
    for package in ("edge_agent", "dockside"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "v1" in path.relative_to(ROOT).parts:  # generated gRPC code
                continue
            codes |= codes_in(ast.parse(path.read_text("utf-8"), str(path)))
    codes |= {code for code, _ in STATUS_ERRORS.values()}
    codes |= {"http_error", "internal_error", "agent_unreachable", "fault_other"}
    codes |= {f"fault_{fault}" for fault in {*PRINTER_FAULTS, *RECEIPT_ADVICE}}
    return codes | page_codes()


def page_codes() -> set[str]:
    """The codes the page gives what the agent said without one (a label's outcome, the scale's
    state, a lost agent): each `code: "..."` and each value of a `..._CODES = {...}` table in its
    scripts (the catalogs themselves aside)."""
    codes: set[str] = set()
    for path in sorted(STATIC.glob("*.js")):
        if path.name.startswith("messages"):
            continue
        script = path.read_text("utf-8")
        codes |= set(re.findall(r"\bcode: \"([a-z][a-z0-9_]*)\"", script))
        for table in re.findall(r"const [A-Z_]*CODES = \{(.*?)\};", script, re.S):
            codes |= set(re.findall(r"\"([a-z][a-z0-9_]*)\"", table))
    return codes


_SAMPLE = {
    "order_ref": "DEMO-0001",
    "printer": "ZD421 S1-label",
    "fallback": "ZD421 S1-spare",
    "station": "S1",
    "faults": ["paper_out", "head_open", "toner_low"],
    "action": "zero",
    "carrier": "DHL",
    "grams": 1234,
    "parcel": 2,
    "used_for": "DEMO-0002",
    "used_parcel": 1,
    "fault": "toner_low",
}

_READER = """
const dir = process.argv[1];
const { WORDS } = await import(`file://${dir}/i18n.js`);
const out = { words: {}, messages: {}, rendered: {} };
for (const lang of %(langs)s) {
  const catalog = (await import(`file://${dir}/messages_${lang}.js`)).default;
  out.words[lang] = Object.keys(WORDS[lang] || {});
  out.messages[lang] = Object.keys(catalog);
  const helpers = {
    weight: (g) => `${(g / 1000).toFixed(3)} kg`,
    faults: (codes) => codes.map((c) => typeof catalog[`fault_${c}`] === "string" ? catalog[`fault_${c}`]
      : catalog.fault_other({ fault: c })).join("; "),
  };
  // As the page passes them (messages.js): a param the agent did not send reads as "–".
  const params = new Proxy(%(sample)s, { get: (target, key) => (target[key] ?? "–") });
  out.rendered[lang] = Object.fromEntries(Object.entries(catalog).map(([code, entry]) =>
    [code, typeof entry === "function" ? String(entry(params, helpers)) : String(entry)]));
}
console.log(JSON.stringify(out));
"""


def read_catalogs(static: Path = STATIC) -> dict[str, dict[str, object]]:
    """The page's catalogs as node loads them: UI word keys, message codes and each message rendered."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is missing: apt-get install nodejs (it reads the page's catalogs as a browser does)"
        )
    program = _READER % {"langs": json.dumps(LANGS), "sample": json.dumps(_SAMPLE)}
    done = subprocess.run(
        [node, "--input-type=module", "-e", program, str(static)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def missing_entries(codes: set[str], catalogs: dict[str, dict[str, object]]) -> dict[str, list[str]]:
    """For each language, the codes its message catalog lacks."""
    messages = catalogs["messages"]
    return {lang: sorted(codes - set(messages[lang])) for lang in LANGS if codes - set(messages[lang])}  # type: ignore[call-overload]


def test_the_code_collector_finds_each_kind_of_code() -> None:
    source = """
class Refused(InputError):
    code = "class_code"
raise NotFound("...", code="keyword_code")
said = {"code": "dict_code", "params": {}}
await send_error(send, 413, "positional_code", "too large")
raise Conflict("not a code", code=computed)
"""
    assert codes_in(ast.parse(source)) == {"class_code", "keyword_code", "dict_code", "positional_code"}


def test_every_agent_code_has_an_entry_in_every_catalog() -> None:
    codes = agent_codes()
    # The collector finds the codes the station page shows most: a sanity floor.
    assert {
        "order_not_found",
        "scale_zero_out_of_range",
        "printer_fault",
        "held_printer_fault",
        "fault_paper_out",
        "invalid_input",
        "body_too_large",
        "scale_busy",
        "label_unconfirmed",
        "scale_not_answering",
    } <= codes
    missing = missing_entries(codes, read_catalogs())
    assert missing == {}, (
        "codes the agent can send without words on the station page: add them to "
        f"edge_agent/http/web/static/messages_<lang>.js: {missing}"
    )


def test_a_new_code_without_words_fails(tmp_path: Path) -> None:
    """The check above fails for a code the agent sends that a catalog lacks."""
    source = tmp_path / "new_error.py"
    source.write_text('raise Conflict("the pallet is full: start a new one", code="pallet_full")\n')
    codes = agent_codes() | codes_in(ast.parse(source.read_text()))
    missing = missing_entries(codes, read_catalogs())
    assert missing == {"en": ["pallet_full"], "zh": ["pallet_full"], "es": ["pallet_full"]}


def test_every_ui_word_is_in_every_language() -> None:
    words = read_catalogs()["words"]
    english = set(words["en"])  # type: ignore[call-overload]
    for lang in ("zh", "es"):
        assert sorted(english - set(words[lang])) == [], f"words missing in {lang}"  # type: ignore[call-overload]


def test_every_message_renders_and_the_translations_hold_no_english() -> None:
    rendered = read_catalogs()["rendered"]
    allowed = {*_KEPT_WORDS, *re.findall(r"[A-Za-z]{3,}", json.dumps(_SAMPLE))}
    for lang in LANGS:
        for code, shown in rendered[lang].items():  # type: ignore[attr-defined]
            assert shown.strip(), (lang, code)
            text = shown
            for value in sorted(
                re.findall(r"[A-Za-z0-9_ -]{3,}", json.dumps(_SAMPLE)), key=len, reverse=True
            ):
                text = text.replace(value, " ")  # the sample's names are no English left
            assert "undefined" not in shown, (lang, code, shown)
            assert "[object" not in shown, (lang, code, shown)
            if lang == "zh":  # no Latin word but names, units and key caps
                english = [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in allowed]
                assert english == [], (lang, code, text)
            if lang == "es":  # Spanish is written in Latin letters too: no English word among them
                english = [w for w in re.findall(r"[A-Za-z]+", text.lower()) if w in _ENGLISH]
                assert english == [], (lang, code, text)
            if lang != "en":
                assert text != rendered["en"][code] or code.startswith("fault_other"), (lang, code)  # type: ignore[index]
