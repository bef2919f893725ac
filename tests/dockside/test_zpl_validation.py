"""Validation of ZPL templates at create and publish: every refusal says where and what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from dockside.errors import TemplateError, TemplateOverrun
from dockside.labels import compile_template, validate_template

SAMPLE = {"name": "Ann", "lines": [{"sku": "A-1", "qty": 2}], "long": "x" * 20_000}
GOOD = "^XA\n^CI28\n^FO10,10^A0N,30,30^FH^FD{{ name }}^FS\n^XZ\n"


def refuse(
    source: str, sample: dict[str, Any] | None = None, width: int = 812, height: int = 1218
) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        validate_template(
            "zpl", source, SAMPLE if sample is None else sample, width_dots=width, height_dots=height
        )
    assert caught.value.http_status == 422
    return caught.value


def test_a_good_template_returns_its_sample_label() -> None:
    label = validate_template("zpl", GOOD, SAMPLE, width_dots=812, height_dots=1218)
    assert label == b"^XA\n^CI28\n^FO10,10^A0N,30,30^FH^FDAnn^FS\n^XZ\n"


def test_a_jinja_syntax_error_names_line_and_column() -> None:
    error = refuse("^XA\n^CI28\n^FO10,10^FH^FD{{ name }^FS\n^XZ")
    assert (error.line, error.column) == (3, 23)
    assert "line 3, column 23" in error.message
    assert "unexpected '}'" in error.message


def test_an_unclosed_block_names_its_line() -> None:
    error = refuse("^XA\n{% for line in lines %}\n^FO10,10^FH^FD{{ line.sku }}^FS\n^XZ")
    assert error.line is not None
    assert "endfor" in error.message


def test_a_variable_the_sample_lacks_is_refused_with_its_place() -> None:
    error = refuse("^XA^CI28\n^FO10,10^FH^FD{{ nam }}^FS^XZ")
    assert error.code == "template_missing_value"
    assert (error.line, error.column) == (2, 18)
    assert "nam" in error.message
    assert "add nam to the sample data" in error.message


def test_a_missing_key_in_a_branch_the_sample_does_not_take_is_refused_too() -> None:
    source = "^XA^CI28\n{% if name == 'nobody' %}\n^FO10,10^FH^FD{{ ship_to.phone }}^FS\n{% endif %}\n^XZ"
    error = refuse(source, {"name": "Ann", "ship_to": {"city": "X"}})
    assert error.code == "template_missing_value"
    assert error.line == 3
    assert "ship_to.phone" in error.message


def test_a_loop_variable_is_checked_against_the_first_item() -> None:
    source = "^XA^CI28\n{% for line in lines %}^FO10,10^FH^FD{{ line.colour }}^FS{% endfor %}^XZ"
    error = refuse(source)
    assert "line.colour" in error.message


def test_a_guarded_value_may_be_missing() -> None:
    source = (
        "^XA^CI28^FO10,10^FH^FD{{ phone | default('') }}{% if fax is defined %}{{ fax }}{% endif %}^FS^XZ"
    )
    assert validate_template("zpl", source, SAMPLE, width_dots=812, height_dots=1218).count(b"^FD^FS") == 1


@pytest.mark.parametrize(
    ("source", "fragment", "where"),
    [
        ("^XA^CI28^FO10,10^FDx^FS", "never closed: end it with ^XZ", (1, 1)),
        ("^XA^CI28^XA^XZ", "opens a label inside another", (1, 9)),
        ("^XA^XZ^XZ", "^XZ is outside a label", (1, 7)),
        ("^FO10,10^XA^XZ", "outside a label", (1, 1)),
        ("hello^XA^XZ", "starts with text that is no command", (1, 1)),
        ("^XA^XZ trailing", "belongs to no command", (1, 4)),
        ("{# nothing #}", "renders no label", (None, None)),
        ("^XA^CI28^FO10,10^FDx^XZ", "never closed: end it with ^FS", (1, 9)),
        ("^XA^CI28^FO10,10^FDx^FO20,20^FDy^FS^XZ", "not closed before the next one", (1, 9)),
        ("^XA^CI28^FDx^FS^XZ", "^FD has no position", (1, 9)),
        ("^XA^CI28^FS^XZ", "^FS closes no field", (1, 9)),
        ("^XA^CI28^FO10,10^FS^XZ", "has nothing to print", (1, 9)),
        ("^XA^FO10,10^FDx^FS^XZ", "field data before ^CI28", (1, 12)),
        ("^XA^CI28^FO900,10^FDx^FS^XZ", "x=900, outside the 812-dot-wide label: use x from 0 to 811", (1, 9)),
        ("^XA^CI28^FO10,1300^FDx^FS^XZ", "y=1300, outside the 1218-dot-high label", (1, 9)),
        ("^XA^CI28^LH700,0^FO200,10^FDx^FS^XZ", "x=900", (1, 17)),
        ("^XA^CI28^FO10,10^GB900,10,2^FS^XZ", "the box reaches x=910", (1, 17)),
        ("^XA^CI28^FO700,10^FB200,2^FDx^FS^XZ", "make it at most 112 wide", (1, 18)),
        ("^XA^PW900^XZ", "^PW900 is not within the 812-dot-wide label", (1, 4)),
        ("^XA^LL2000^XZ", "use ^LL1218", (1, 4)),
        ("^XA^CI28^FOa,10^FDx^FS^XZ", "x must be a whole number, not 'a'", (1, 9)),
        ("^XA^CI28^FO10,10^A0X,30^FDx^FS^XZ", "orientation must be one of N, R, I, B", (1, 17)),
        ("^XA^CI28^FO10,10^BY20^BCN,50^FDx^FS^XZ", "module width must be 1 to 10", (1, 17)),
        ("^XA^CI28^FO10,10^BQN,2,40^FDx^FS^XZ", "magnification must be 1 to 10", (1, 17)),
        ("^XA^PQ0^XZ", "quantity must be 1 to 99,999", (1, 4)),
    ],
)
def test_malformed_labels_are_refused_with_what_to_fix(
    source: str, fragment: str, where: tuple[int | None, int | None]
) -> None:
    error = refuse(source)
    assert error.code == "invalid_zpl"
    assert fragment in error.message
    assert (error.line, error.column) == where


def test_a_position_computed_from_data_is_checked_after_rendering() -> None:
    source = (
        "^XA\n^CI28\n{% for line in lines %}\n"
        "^FO10,{{ 1200 + line.qty * 10 }}^FH^FD{{ line.sku }}^FS\n{% endfor %}^XZ"
    )
    error = refuse(source)
    assert "y=1220" in error.message
    assert error.line == 3
    assert "of the rendered sample label" in error.message


@pytest.mark.parametrize(
    ("source", "fragment", "where"),
    [
        ("^XA\n^ZZ^XZ", "unknown or unsupported ZPL command ^ZZ: use one of ^A, ^B3", (2, 1)),
        ("^XA\n^CI28^DFR:X.ZPL^FS^XZ", "unknown or unsupported ZPL command ^DF", (2, 6)),
        ("^XA^JUS^XZ", "unknown or unsupported ZPL command ^JU", (1, 4)),
        ("^XA\n~JR\n^XZ", "~JR is a control command", (2, 1)),
        ("^XA~HS^XZ", "~HS is a control command", (1, 4)),
        ("~WC", "~WC is a control command", (1, 1)),
        ("^XA^CC+^XZ", "^CC changes the ZPL command or delimiter characters", (1, 4)),
        ("^XA~CT+^XZ", "~CT changes the ZPL command or delimiter characters", (1, 4)),
        ("^XA^CD;^XZ", "^CD changes", (1, 4)),
        ("^XA^CI28^FO1,1^FH\\^FD{{ name }}^FS^XZ", "changes the hex escape character", (1, 15)),
        ("^XA^CI0^XZ", "selects another encoding: write ^CI28", (1, 4)),
        ("^XA^CI28^FO1,1^FD{{ name }}^FS^XZ", "no ^FH before ^FD", (1, 15)),
        ("^XA^CI28^FO1,1^FH^FS^FO2,2^FD{{ name }}^FS^XZ", "no ^FH before ^FD", (1, 27)),
        ("^XA^{{ name }}^XZ", "command name is built by the template", (1, 4)),
        ("^XA^F{{ name }}^XZ", "command name is built by the template", (1, 4)),
        ("^XA{% if name %}~JR{% endif %}^XZ", "~JR is a control command", (1, 17)),
        ("^XA{# ~JR is fine in a comment #}{% raw %}^ZZ{% endraw %}^XZ", "^ZZ", (1, 43)),
    ],
)
def test_forbidden_commands_are_refused_where_the_admin_wrote_them(
    source: str, fragment: str, where: tuple[int, int]
) -> None:
    error = refuse(source)
    assert fragment in error.message
    assert (error.line, error.column) == where
    assert f"line {where[0]}, column {where[1]}" in error.message


def test_a_value_may_not_build_a_command_even_when_escaping_is_bypassed_in_static_text() -> None:
    # A value rendered where a command name would be is escaped, so it can never open one.
    label = validate_template(
        "zpl", "^XA^CI28^FO1,1^FH^FD{{ name }}^FS^XZ", {"name": "^XZ~JR"}, width_dots=100, height_dots=100
    )
    assert label == b"^XA^CI28^FO1,1^FH^FD_5EXZ_7EJR^FS^XZ"


def test_oversized_sources_samples_labels_and_sizes_are_refused() -> None:
    assert refuse("^XA" + " " * 70_000 + "^XZ").code == "template_too_large"
    assert refuse(GOOD, {"name": "x" * 70_000}).code == "sample_data_too_large"
    assert refuse(GOOD, width=0).code == "invalid_label_size"
    assert refuse(GOOD, height=50_000).code == "invalid_label_size"
    # 2,000 turns of 230 bytes: 460 KB of label, well within the validation's render budget.
    body = "^FO1,1^FDxxxxxxxx^FS" * 10
    many = (
        f"^XA^CI28{{% for line in lines %}}{{% for c in long[:2000] %}}{body}{{% endfor %}}{{% endfor %}}^XZ"
    )
    error = refuse(many)
    assert error.code == "label_too_large"
    assert "at most 256 KB" in error.message


def test_a_template_that_runs_too_long_is_stopped() -> None:
    source = "^XA{% for a in long %}{% for b in long %}{% endfor %}{% endfor %}^XZ"
    error = refuse(source)
    assert isinstance(error, TemplateOverrun)
    assert error.code == "template_over_budget"
    assert "simplify the loops" in error.message


def test_unknown_language_is_refused() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("epl", "N")
    assert caught.value.code == "unknown_language"
    assert "use one of zpl, escpos" in caught.value.message


def test_render_errors_on_real_orders_are_template_errors() -> None:
    compiled = compile_template("zpl", GOOD)
    with pytest.raises(TemplateError) as missing:
        compiled.render({})
    assert missing.value.code == "template_missing_value"
    arithmetic = compile_template("zpl", "^XA^FO{{ 10 // zero }},1^XZ")
    with pytest.raises(TemplateError) as failed:
        arithmetic.render({"zero": 0})
    assert failed.value.code == "template_render_failed"


def test_is_not_defined_guards_nothing() -> None:
    source = "^XA^CI28{% if fax is not defined %}^FO1,1^FH^FD{{ fax }}^FS{% endif %}^XZ"
    assert refuse(source).code == "template_missing_value"
