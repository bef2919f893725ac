"""Server-side template injection is refused at validation and cannot execute at render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockside.errors import TemplateError
from dockside.labels import compile_template, validate_template

SAMPLE = {"name": "Ann", "key": "__class__", "text": "abc", "n": 3}


def _payloads(marker: Path) -> list[str]:
    """Classic Jinja2 escapes; each would create `marker` if it ever executed."""
    command = f"touch {marker}"
    return [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__()[132].__init__.__globals__['popen']"
        f"('{command}').read() }}}}",
        f"{{{{ cycler.__init__.__globals__.os.popen('{command}').read() }}}}",
        f"{{{{ lipsum.__globals__['os'].popen('{command}').read() }}}}",
        f"{{{{ joiner.__init__.__globals__.os.popen('{command}') }}}}",
        f"{{{{ namespace.__init__.__globals__.os.popen('{command}') }}}}",
        "{{ self._TemplateReference__context }}",
        "{{ self }}",
        "{{ config.items() }}",
        "{{ request.application.__globals__ }}",
        "{{ ''['__class__'] }}",
        "{{ name['__class__'] }}",
        "{{ ''|attr('__class__') }}",
        "{{ name|format('%s') }}",
        "{{ (name|string).__class__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{% set x = ''.__class__ %}{{ x }}",
        "{% macro m() %}{{ caller }}{% endmacro %}",
        "{% include 'other' %}",
        "{% import 'os' as os %}",
        "{% extends 'base' %}",
        "{% filter upper %}x{% endfilter %}",
        "{{ range(10) }}",
        "{{ name.upper() }}",
        "{% for x in [1] recursive %}{{ loop(x) }}{% endfor %}",
        "{{ name is callable }}",
        "{{ name|tojson }}",
    ]


def test_every_injection_is_refused_at_validation_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in _payloads(marker):
        source = f"^XA^CI28^FO10,10^FH^FD{payload}^FS^XZ"
        with pytest.raises(TemplateError) as caught:
            validate_template("zpl", source, SAMPLE, width_dots=812, height_dots=1218)
        assert caught.value.http_status == 422, payload
        assert caught.value.line == 1, payload
        assert caught.value.column is not None, payload
        assert not marker.exists(), payload


def test_injection_in_an_escpos_text_is_refused_with_its_place(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in _payloads(marker):
        source = json.dumps(
            {"operations": [{"op": "text", "text": "ok"}, {"op": "text", "text": payload}]}, indent=1
        )
        with pytest.raises(TemplateError) as caught:
            validate_template("escpos", source, SAMPLE, width_dots=576, height_dots=4000)
        assert "operations[1].text" in caught.value.message, payload
        assert not marker.exists(), payload


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("{{ 'a' * 100000000 }}", "repeating text to more than 10000 characters"),
        ("{{ 9 ** 999999 }}", "an exponent above 64"),
        ("{{ '%s%s' % (name, name) }}", "string formatting with %"),
        ("{{ name | center(100000000) }}", "| center accepts a width up to 1000"),
        ("{{ text | replace('', text) }}", "| replace would make a value longer"),
        ("{{ name | batch(0) }}", "| batch accepts a size from 1 to 1000"),
    ],
)
def test_operations_that_would_grow_without_bound_are_stopped(payload: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        validate_template(
            "zpl", f"^XA^CI28^FO1,1^FH^FD{payload}^FS^XZ", SAMPLE, width_dots=812, height_dots=1218
        )
    assert caught.value.code == "template_unsafe"
    assert fragment in caught.value.message


def test_a_key_that_arrives_in_order_data_cannot_reach_python_internals() -> None:
    # Compiling skips the sample checks, as the agent does; the sandbox still holds at render.
    compiled = compile_template("zpl", "^XA^CI28^FO1,1^FH^FD{{ text[key] }}^FS^XZ")
    with pytest.raises(TemplateError) as caught:
        compiled.render(SAMPLE)
    assert caught.value.code == "template_unsafe"


def test_nesting_loops_more_than_two_deep_is_refused() -> None:
    source = (
        "^XA{% for a in text %}{% for b in text %}{% for c in text %}{% endfor %}{% endfor %}{% endfor %}^XZ"
    )
    with pytest.raises(TemplateError) as caught:
        validate_template("zpl", source, SAMPLE, width_dots=812, height_dots=1218)
    assert "loops may nest at most 2 deep" in caught.value.message
    assert caught.value.column == 45
