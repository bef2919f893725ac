"""Hostile label templates: every way to make one operation or one render do unbounded work is refused.

Each case asserts the outcome (the typed error, its code and what it says), never a duration. The
generated cases run each render in a watchdog thread and assert that it finished with a label or a
TemplateError: a big-integer power or a huge repetition would leave the thread running.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dockside.errors import TemplateError, TemplateOverrun
from dockside.labels import (
    STATION_BUDGET,
    VALIDATION_BUDGET,
    RenderBudget,
    compile_template,
    load_shipped_template,
    validate_template,
)
from dockside.labels.work_bounds import MAX_INT_BITS, MAX_REPEAT, MAX_TEXT, text_size

# The issue's two templates: the first froze the cloud's validation, the second passed it with
# its sample (weight 1) and froze the agent's event loop at the first real parcel.
ISSUE_STATIC = "^XA^CI28{% if ((((3)**64)**64)**64)**64 > 7 %}^FO1,1^FDx^FS{% endif %}^XZ"
ISSUE_DATA = "^XA^CI28^FO1,1^FH^FD{{ (((parcel.weight_g)**64)**64)**64 }}^FS^XZ"
SAMPLE: dict[str, Any] = {
    "parcel": {"weight_g": 1},
    "name": "Ann",
    "n": 3,
    "lines": [{"sku": "A-1", "qty": 2}],
    "text": "abc",
}
WATCHDOG_S = 30.0


def _zpl(expression: str) -> str:
    return f"^XA^CI28^FO1,1^FH^FD{expression}^FS^XZ"


def _validate(source: str, sample: dict[str, Any] | None = None) -> bytes:
    return validate_template(
        "zpl", source, SAMPLE if sample is None else sample, width_dots=812, height_dots=1218
    )


def _finishes(work: Callable[[], object]) -> object:
    """Run `work` in a watchdog thread; its result or error, once it has finished (fails if it has not)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="render-under-watchdog", daemon=True)
    thread.start()
    thread.join(WATCHDOG_S)
    assert not thread.is_alive(), "the render did not finish: an operation is not bounded"
    return outcome[0]


# -- the issue's templates ------------------------------------------------------------------------


def test_the_issues_static_power_is_refused_at_validation() -> None:
    error = _finishes(lambda: _validate(ISSUE_STATIC))
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_unsafe"
    assert "a power of more than 4,096 bits" in error.message
    assert error.http_status == 422


def test_the_issues_data_dependent_power_passes_its_sample_and_is_stopped_on_a_real_parcel() -> None:
    assert _validate(ISSUE_DATA) == b"^XA^CI28^FO1,1^FH^FD1^FS^XZ"
    compiled = compile_template("zpl", ISSUE_DATA)
    error = _finishes(lambda: compiled.render({"parcel": {"weight_g": 1500}}))
    assert isinstance(error, TemplateOverrun)
    assert "a power of more than 4,096 bits" in error.message


# -- one operation past its bound ----------------------------------------------------------------

BIG_TEXT = "('x' * 9999)"
HUGE_LIST = f"[[{BIG_TEXT}] * 9, [{BIG_TEXT}] * 9, [{BIG_TEXT}] * 9]"  # 270,000 characters as text

REFUSED_OPERATIONS = [
    # powers and products of whole numbers
    ("{{ 9 ** 999999 }}", "an exponent above 64"),
    ("{{ 2 ** 1e300 }}", "an exponent above 64"),
    ("{{ (2 ** 64) ** 64 }}", f"a power of more than {MAX_INT_BITS:,} bits"),
    ("{{ (2 ** 64) ** 63 * (2 ** 64) ** 63 }}", f"a product of more than {MAX_INT_BITS:,} bits"),
    ("{{ (2 ** 64) ** 63 * 2 ** 64 * 2 ** 64 }}", f"a product of more than {MAX_INT_BITS:,} bits"),
    (
        "{{ ((2 ** 64) ** 63 * 2 ** 62 + (2 ** 64) ** 63 * 2 ** 62) + 1 }}",
        f"a whole number of more than {MAX_INT_BITS:,} bits",
    ),
    ("{{ ('f' * 9999) | int(0, 16) }}", f"a whole number of more than {MAX_INT_BITS:,} bits"),
    # repetition of text and lists
    ("{{ 'a' * 100000000 }}", f"repeating text to more than {MAX_REPEAT} characters"),
    ("{{ 100000000 * 'a' }}", f"repeating text to more than {MAX_REPEAT} characters"),
    ("{{ ['a'] * 10000 * 10000 }}", f"repeating text to more than {MAX_REPEAT} characters"),
    (f"{{{{ [{BIG_TEXT}] * 100 }}}}", "repeating a list to more than 100,000 characters"),
    # growing text by joining it
    ("{{ " + " ~ ".join([BIG_TEXT] * 11) + " }}", "joining text with ~ to more than 100,000"),
    ("{{ " + " + ".join([BIG_TEXT] * 11) + " }}", "joining text or lists with + to more than 100,000"),
    (f"{{{{ ([{BIG_TEXT}] * 9) | join('y' * 9999) }}}}", "| join would make a value longer"),
    (f"{{{{ {BIG_TEXT} | replace('x', 'yy') | replace('y', 'zzzzzz') }}}}", "| replace would make a value"),
    ("{{ text | replace('', text) }}", "| replace would make a value longer"),
    # widths, counts and precisions
    ("{{ name | center(100000000) }}", "| center accepts a width up to 1000"),
    ("{{ lines | batch(0) }}", "| batch accepts a size from 1 to 1000"),
    (f"{{{{ lines | batch(1000, {BIG_TEXT}) | list }}}}", "| batch may fill with at most"),
    ("{{ 5 | round(-1000000000) }}", "| round accepts a precision from -30 to 30"),
    ("{{ 5 | round(100, 'ceil') }}", "| round accepts a precision from -30 to 30"),
    (f"{{{{ ({BIG_TEXT} ~ 'xx') | wordwrap(1) }}}}", "| wordwrap accepts text up to 10,000"),
    ("{{ ('x ' * 4999) | wordwrap(1, true, 'y' * 100) }}", "| wordwrap would make a value longer"),
    # adding lists or text with sum (quadratic copying)
    ("{{ [[1], [2]] | sum(start=[]) }}", "| sum adds numbers only"),
    ("{{ ['a', 'b'] | sum(start='') }}", "| sum adds numbers only"),
    # turning a huge structure into text, directly or through a filter
    (f"{{{{ {HUGE_LIST} }}}}", "prints a value of more than 100,000 characters"),
    (f"{{{{ {HUGE_LIST} | string }}}}", "a filter may read at most 100,000 characters"),
    (f"{{{{ {HUGE_LIST} | upper }}}}", "a filter may read at most 100,000 characters"),
    (f"{{{{ {HUGE_LIST} ~ '' }}}}", "joining text with ~ to more than 100,000"),
    (f"{{{{ {HUGE_LIST} | urlencode }}}}", "a filter may read at most 100,000 characters"),
    # string formatting (any width)
    ("{{ '%0999999999d' % 1 }}", "string formatting with % is not allowed"),
    ("{{ '%s%s' % (name, name) }}", "string formatting with % is not allowed"),
]


@pytest.mark.parametrize(("expression", "fragment"), REFUSED_OPERATIONS)
def test_an_operation_past_its_bound_is_refused_at_validation(expression: str, fragment: str) -> None:
    error = _finishes(lambda: _validate(_zpl(expression)))
    assert isinstance(error, TemplateOverrun), error
    assert error.code == "template_unsafe"
    assert fragment in error.message


@pytest.mark.parametrize(("expression", "fragment"), REFUSED_OPERATIONS)
def test_an_operation_past_its_bound_is_refused_at_a_station(expression: str, fragment: str) -> None:
    compiled = compile_template("zpl", _zpl(expression))
    error = _finishes(lambda: compiled.render(SAMPLE))
    assert isinstance(error, TemplateOverrun), error
    assert fragment in error.message


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{ '%0999999999d' | format(1) }}", "the filter | format is not available"),
        ("{{ '{:>999999999}'.format(1) }}", "calling a function or method"),
        ("{{ lipsum(100000) }}", "calling a function or method"),
        ("{{ range(1000000000) | list | sum }}", "calling a function or method"),
        ("{{ name | indent(100000000) }}", "the filter | indent is not available"),
        ("{{ {'a': 1} | dictsort }}", "the filter | dictsort is not available"),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "macros are not allowed"),
        ("{% for x in lines recursive %}{{ loop(lines) }}{% endfor %}", "recursive loops are not allowed"),
        (
            "{% for a in text %}{% for b in text %}{% for c in text %}{% endfor %}{% endfor %}{% endfor %}",
            "at most 2",
        ),
    ],
)
def test_unbounded_constructs_are_not_even_reachable(source: str, fragment: str) -> None:
    error = _finishes(lambda: compile_template("zpl", _zpl(source)))
    assert isinstance(error, TemplateError)
    assert fragment in error.message
    assert error.line == 1


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("(" * 5000 + "1" + ")" * 5000, "nests expressions or tags more than 64 deep"),
        ("[" * 5000 + "1" + "]" * 5000, "nests expressions or tags more than 64 deep"),
        (" + ".join(["n"] * 5000), "nests expressions or tags more than 64 deep"),
        ("n" + " | abs" * 5000, "nests expressions or tags more than 64 deep"),
        (" ~ ".join(["'ab'"] * 9000), "at most 4,000 keep compiling it quick"),
        ("9" * 5000, "a value it cannot read"),
    ],
)
def test_a_source_too_deep_or_too_big_to_compile_quickly_is_refused(expression: str, fragment: str) -> None:
    error = _finishes(lambda: compile_template("zpl", _zpl(f"{{{{ {expression} }}}}")))
    assert isinstance(error, TemplateError)
    assert error.code in ("template_too_large", "invalid_template")
    assert fragment in error.message


def test_a_value_nested_too_deep_to_print_is_refused() -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    compiled = compile_template("zpl", _zpl("{{ deep }}"))
    error = _finishes(lambda: compiled.render({"deep": deep}))
    assert isinstance(error, TemplateOverrun)
    assert "prints a value of more than 100,000 characters" in error.message


def test_bounded_operations_at_their_limits_still_work() -> None:
    label = _validate(_zpl("{{ '-' * 40 }}{{ (7 ** 64) | string | length }}{{ [1, 2.5, 3] | sum }}"))
    assert b"-" * 40 + b"55" + b"6.5" in label
    assert _validate(_zpl("{{ ('x' * 9999) | truncate(1000000000) | length }}")).count(b"9999") == 1
    assert _validate(_zpl("{{ ('ab ' * 3000) | wordwrap(10) | length }}"))


def test_work_a_template_names_at_compile_time_runs_at_render_within_the_budget() -> None:
    # Jinja2 folds constant expressions while compiling; a bounded filter refuses to run there, so
    # even an over-wide constant `center` compiles and is refused only when a render runs it.
    compiled = compile_template("zpl", _zpl("{{ 'x' | center(5000) }}"))
    error = _finishes(lambda: compiled.render({}))
    assert isinstance(error, TemplateOverrun)
    assert "| center accepts a width up to 1000" in error.message


def test_text_size_stops_counting_past_its_limit() -> None:
    shared = ["x" * 1000] * 10_000  # ten million characters as text, in one list of references
    nested = [shared] * 10_000
    assert MAX_TEXT < text_size(nested) < 2 * MAX_TEXT


# -- the render budget ---------------------------------------------------------------------------

LOOPS = (
    "{% for a in 'x' * parcel.weight_g %}{% for b in 'x' * parcel.weight_g %}{{ b }}{% endfor %}{% endfor %}"
)


def test_loops_that_run_past_the_budget_are_stopped_with_their_reason() -> None:
    source = _zpl(LOOPS)
    assert _validate(source)  # weight 1: one turn
    compiled = compile_template("zpl", source)
    error = _finishes(lambda: compiled.render({"parcel": {"weight_g": 9_999}}))
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_over_budget"
    assert f"more than its {STATION_BUDGET.units:,} work units" in error.message
    assert "simplify the loops" in error.message


def test_validation_is_stricter_than_a_station_so_samples_leave_headroom() -> None:
    # A sample that needs more than the validation's units is refused, though a station renders it.
    source = _zpl("{% for a in 'x' * parcel.weight_g %}{{ a }}{% endfor %}")
    sample = {"parcel": {"weight_g": 9_999}}
    error = _finishes(lambda: _validate(source, sample))
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_over_budget"
    assert f"more than its {VALIDATION_BUDGET.units:,} work units" in error.message
    assert compile_template("zpl", source).render(sample).count(b"x") == 9_999


def test_cpu_time_ends_a_render_that_is_costly_per_unit() -> None:
    # A generous unit budget and a tiny time one: each turn compares 10,000-character texts.
    compiled = compile_template(
        "zpl", _zpl("{% for a in 'x' * 9999 %}{{ ('y' * 9999) == ('y' * 9998 ~ a) }}{% endfor %}")
    )
    error = _finishes(lambda: compiled.render({}, RenderBudget(units=10**9, seconds=0.001)))
    assert isinstance(error, TemplateOverrun)
    assert "s of CPU time" in error.message


def test_a_slip_that_repeats_operations_past_the_budget_is_stopped() -> None:
    each = {
        "op": "each",
        "items": "'x' * parcel.weight_g",
        "as": "c",
        "do": [{"op": "qr", "data": "{{ c }}"}],
    }
    source = json.dumps({"operations": [{"op": "text", "text": "slip"}, each, {"op": "cut"}]})
    assert validate_template("escpos", source, SAMPLE, width_dots=576, height_dots=4000)
    compiled = compile_template("escpos", source)
    error = _finishes(lambda: compiled.render({"parcel": {"weight_g": 9_999}}))
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_over_budget"


def test_a_slip_loop_pays_for_the_bytes_its_operations_print() -> None:
    # 3,000 turns of a 576 x 1000 dot picture would be 216 MB of printer bytes from a tiny template.
    picture = io.BytesIO()
    Image.new("1", (576, 1000), 1).save(picture, format="PNG")
    image = {"op": "image", "png_base64": base64.b64encode(picture.getvalue()).decode()}
    each = {"op": "each", "items": "'x' * parcel.weight_g", "as": "c", "do": [image]}
    compiled = compile_template("escpos", json.dumps({"operations": [each]}))
    assert len(compiled.render({"parcel": {"weight_g": 1}})) < 100_000
    error = _finishes(lambda: compiled.render({"parcel": {"weight_g": 3_000}}))
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_over_budget"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ parcel.weight_g ** 64 ** 64 }}", "a power of more than"),
        ("{{ '=' * parcel.weight_g * 100 }}", "repeating text to more than"),
        ("{{ c | center(parcel.weight_g * 1000) }}", "| center accepts a width up to 1000"),
    ],
)
def test_an_escpos_field_is_bounded_like_a_zpl_one(text: str, fragment: str) -> None:
    each = {"op": "each", "items": "lines", "as": "c", "do": [{"op": "text", "text": text}]}
    compiled = compile_template("escpos", json.dumps({"operations": [each]}))
    error = _finishes(lambda: compiled.render({**SAMPLE, "parcel": {"weight_g": 1500}}))
    assert isinstance(error, TemplateOverrun)
    assert fragment in error.message


def test_shipped_templates_render_a_big_order_well_within_a_stations_budget() -> None:
    for name in ("shipping-4x6", "sku-2x1", "packing-slip"):
        shipped = load_shipped_template(name)
        compiled = compile_template(shipped.language, shipped.source, width_dots=shipped.width_dots)
        sample = json.loads(json.dumps(shipped.sample_data))
        lines = [{"sku": f"SKU-{n}", "qty": 1, "description": "a mug " * 5} for n in range(300)]
        sample["lines"] = lines
        if isinstance(sample.get("order"), dict):
            sample["order"]["lines"] = lines
        tight = RenderBudget(units=STATION_BUDGET.units // 4, seconds=STATION_BUDGET.seconds)
        assert compiled.render(sample, tight)


# -- generated hostile expressions ----------------------------------------------------------------

_ATOMS = st.sampled_from(
    [
        "0", "1", "2", "7", "64", "9999", "10000", "-3", "2.5", "1e300", "n", "parcel.weight_g",
        "'x'", "'ab '", "text", "name", "lines", "[1, 2, 3]", "['a', 'b']", "(7 ** 64)",
    ]
)  # fmt: skip
_FILTERS = st.sampled_from(
    [
        "list", "join", "join(',')", "upper", "string", "length", "first", "last", "reverse", "sort",
        "unique", "sum", "int", "float", "abs", "center(999)", "center(n)", "replace('x', 'xx')",
        "wordwrap(3)", "truncate(5, true, '')", "batch(3) | list", "round(2)", "urlencode",
        "map('upper') | list", "select | list", "default('z')", "trim", "title", "max", "min",
    ]
)  # fmt: skip
_OPERATORS = st.sampled_from(["**", "*", "+", "~", "-", "//", "%", "*", "**"])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, _OPERATORS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, _FILTERS).map(lambda t: f"({t[0]} | {t[1]})"),
            st.lists(inner, min_size=1, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        ),
        max_leaves=12,
    )


@st.composite
def _templates(draw: st.DrawFn) -> str:
    value = draw(_expressions())
    shape = draw(st.sampled_from(["out", "if", "loop", "loops"]))
    if shape == "out":
        return _zpl(f"{{{{ {value} }}}}")
    if shape == "if":
        return _zpl(f"{{% if {value} %}}y{{% endif %}}")
    items = draw(_expressions())
    if shape == "loop":
        return _zpl(f"{{% for a in {items} %}}{{{{ {value} }}}}{{% endfor %}}")
    return _zpl(
        f"{{% for a in {items} %}}{{% for b in {items} %}}{{{{ {value} }}}}{{% endfor %}}{{% endfor %}}"
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=_templates(), weight=st.sampled_from([1, 1500, 99_999]))
def test_generated_hostile_templates_render_or_raise_the_typed_error(source: str, weight: int) -> None:
    data = {**SAMPLE, "parcel": {"weight_g": weight}}

    def render() -> bytes:
        return compile_template("zpl", source).render(data)

    outcome = _finishes(render)
    assert isinstance(outcome, bytes | TemplateError), f"{source}: {outcome!r}"
