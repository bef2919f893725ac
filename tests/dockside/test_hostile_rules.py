"""Hostile rule conditions: catastrophic regexes, deep nesting, oversized rulesets, generated garbage.

Every case asserts what happens to the rule (refused with its number, name and reason, or
compiled and deciding correctly), never how long it took; a regression to backtracking regexes or
a recursive parse makes these tests hang past their timeout or raise RecursionError.
"""

from __future__ import annotations

from typing import Any

import pytest
import re2
import rule_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockside.errors import InputError
from dockside.rule_conditions import (
    LOOP_FACTOR,
    MAX_BRACKETS,
    MAX_DEPTH,
    MAX_OPERATORS,
    MAX_WORK,
    compile_condition,
)
from dockside.rules import (
    FACTS,
    MAX_RULES,
    MAX_RULESET_CONDITION_CHARS,
    MAX_SKU_TAGS,
    MAX_TAGS_PER_SKU,
    CompiledRuleset,
    RuleError,
    compile_ruleset,
)

# Each backtracks exponentially in Python's re on the text beside it.
CATASTROPHIC = [
    ("(a+)+$", "a" * 5_000 + "!"),
    ("^(a|a)*$", "a" * 5_000 + "!"),
    ("(a*)*b", "a" * 5_000),
    ("^(([a-z])+.)+[A-Z]([a-z])+$", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" * 100),
    ("(x+x+)+y", "x" * 5_000),
]


def ruleset(when: str, name: str = "hostile", *, before: int = 2) -> dict[str, Any]:
    """A ruleset whose rule number `before + 1` has condition `when`."""
    rules = [{"name": f"plain {n}", "when": "weight_g > 1000000", "then": {}} for n in range(1, before + 1)]
    rules.append({"name": name, "when": when, "then": {"carrier": "HIT"}})
    return {"default": {"carrier": "MISS"}, "rules": rules}


def order(city: str = "Springfield", **ship_to: str) -> dict[str, Any]:
    return {
        "order_ref": "H-1",
        "ship_to": {"city": city, "country": "US", "postal_code": "12345", **ship_to},
        "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
    }


def refusal(rules: dict[str, Any]) -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_ruleset(rules)
    return caught.value


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("pattern", "text"), CATASTROPHIC)
@pytest.mark.parametrize("operator", ["=~", "=~~", "!~", "!~~"])
def test_catastrophic_patterns_match_in_linear_time(pattern: str, text: str, operator: str) -> None:
    compiled = compile_ruleset(ruleset(f"city {operator} {pattern!r}"))
    matched = re2.search(pattern, text) if operator.endswith("~~") else re2.match(pattern, text)
    expected = (matched is not None) != operator.startswith("!")
    for _ in range(20):
        decision = compiled.decide(order(city=text), 500)
        assert decision.carrier == ("HIT" if expected else "MISS")


def test_regexes_still_match_what_they_should() -> None:
    compiled = compile_ruleset(ruleset("postal_code =~ '^9[0-9]{4}$' and city =~~ '(?i)spring'"))
    assert compiled.decide(order(postal_code="94107"), 500).carrier == "HIT"
    assert compiled.decide(order(postal_code="14107"), 500).carrier == "MISS"
    assert compiled.decide(order(city="Autumnfield", postal_code="94107"), 500).carrier == "MISS"
    in_a_comprehension = compile_ruleset(ruleset("$any([sku =~ '^B' for sku in skus])"))
    assert in_a_comprehension.decide(order(), 500).carrier == "HIT"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=a)b", "invalid perl operator"),
        ("(?<=a)b", "invalid perl operator"),
        ("(?<!a)b", "invalid perl operator"),
        ("(?P<x>a)(?P=x)", "invalid perl operator"),
        ("a{2000}", "invalid repetition size"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_the_rule_and_the_reason(pattern: str, reason: str) -> None:
    refused = refusal(ruleset(f"city =~ {pattern!r}", "lookaround"))
    assert (refused.rule, refused.name, refused.code) == (3, "lookaround", "unsupported_regex")
    assert refused.message.startswith("rule 3 ('lookaround'): ")
    assert reason in refused.message
    assert "RE2" in refused.message


@pytest.mark.parametrize(
    "when",
    [
        "city =~ postal_code",
        "city =~ ('(a+)' + '+$')",
        "city !~~ country",
        "city =~",
        # A constant on the left would be matched by Python's re while rule-engine parses it.
        "'" + "a" * 40 + "!' =~ '(a+)+$'",
        "('" + "a" * 40 + "!') =~~ '(a+)+$'",
    ],
)
@pytest.mark.timeout(20)
def test_regexes_that_are_not_a_fact_against_a_quoted_pattern_are_refused(when: str) -> None:
    refused = refusal(ruleset(when))
    assert (refused.rule, refused.name) == (3, "hostile")
    assert "quoted" in refused.message


@pytest.mark.parametrize(
    ("when", "limit"),
    [
        ("not " * 490 + "city == 'x'", f"at most {MAX_OPERATORS}"),
        ("-" * 1_500 + "weight_g > 0", f"at most {MAX_OPERATORS}"),
        ("(" * 200 + "weight_g > 0" + ")" * 200, f"at most {MAX_BRACKETS}"),
        ("[" * 200 + "1" + "]" * 200 + " == []", f"at most {MAX_BRACKETS}"),
        ("city" + ".as_lower" * 200 + " == 'x'", f"at most {MAX_OPERATORS}"),
        (" or ".join(["weight_g"] * (MAX_DEPTH + 5)), f"more than {MAX_DEPTH} levels"),
        ("$abs(" * 20 + "weight_g" + ")" * 20 + " > 1", f"at most {MAX_BRACKETS}"),
    ],
)
def test_deep_and_large_conditions_are_refused_with_the_rule_and_the_limit(when: str, limit: str) -> None:
    refused = refusal(ruleset(when, "deep one"))
    assert (refused.rule, refused.name, refused.code) == (3, "deep one", "rule_too_complex")
    assert refused.message.startswith("rule 3 ('deep one'): ")
    assert limit in refused.message


@pytest.mark.parametrize(
    ("when", "function"),
    [("$range(10000000) == []", "$range"), ("$random() > 0.5", "$random"), ("$now > $today", "$now")],
)
def test_built_ins_outside_the_allowed_few_are_refused(when: str, function: str) -> None:
    refused = refusal(ruleset(when))
    assert refused.code == "unsupported_function"
    assert function in refused.message


def test_a_comprehension_inside_another_is_refused() -> None:
    refused = refusal(ruleset("[[a for a in skus] for b in skus] == []"))
    assert refused.code == "rule_too_complex"
    assert "comprehension" in refused.message


def test_a_loop_whose_body_is_too_big_for_an_orders_lines_is_refused() -> None:
    body = " or ".join(["sku =~~ '[a-z]+[0-9]*x$'"] * 20)
    refused = refusal(ruleset(f"$any([{body} for sku in skus])", "loop"))
    assert (refused.rule, refused.name, refused.code) == (3, "loop", "rule_too_complex")
    assert f"at most {MAX_WORK:,}" in refused.message
    assert f"{LOOP_FACTOR:,} order lines" in refused.message


def test_a_ruleset_whose_rules_together_may_take_too_much_work_is_refused() -> None:
    loop = "$any([sku =~~ '^BAT' for sku in skus])"
    context = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(FACTS))
    per_rule = compile_condition(loop, context, "", number=1, name="x").work
    fits = MAX_WORK // per_rule
    rules = [{"name": f"loop {n}", "when": loop} for n in range(1, fits + 1)]
    assert len(compile_ruleset({"rules": rules}).rules) == fits
    with pytest.raises(InputError) as caught:
        compile_ruleset({"rules": [*rules, {"name": "one more", "when": loop}]})
    assert caught.value.code == "ruleset_too_large"
    assert f"at most {MAX_WORK:,}" in caught.value.message
    assert "heaviest rule" in caught.value.message


def test_conditions_within_the_caps_compile() -> None:
    chain = " or ".join([f"postal_code == '{n:05}'" for n in range(30)])
    listed = "postal_code in [" + ", ".join(f"'{n:05}'" for n in range(150)) + "]"
    compiled = compile_ruleset(
        {"rules": [{"name": "chain", "when": chain}, {"name": "list", "when": listed}]}
    )
    assert len(compiled.rules) == 2


def test_whole_ruleset_caps() -> None:
    too_many = {"rules": [{"name": f"r{n}", "when": "weight_g > 1"} for n in range(MAX_RULES + 1)]}
    with pytest.raises(InputError, match=f"at most {MAX_RULES} rules") as caught:
        compile_ruleset(too_many)
    assert caught.value.code == "ruleset_too_large"
    long_when = "weight_g > 1 and " * 110 + "weight_g > 1"  # under 2,000 characters, not under the sum
    count = MAX_RULESET_CONDITION_CHARS // len(long_when) + 1
    with pytest.raises(InputError, match="characters together") as caught:
        compile_ruleset({"rules": [{"name": f"r{n}", "when": long_when} for n in range(count)]})
    assert caught.value.code == "ruleset_too_large"
    with pytest.raises(InputError, match="SKUs") as caught:
        compile_ruleset({"sku_tags": {f"S{n}": ["x"] for n in range(MAX_SKU_TAGS + 1)}})
    assert caught.value.code == "ruleset_too_large"
    with pytest.raises(InputError, match="tags a SKU"):
        compile_ruleset({"sku_tags": {"S": [f"t{n}" for n in range(MAX_TAGS_PER_SKU + 1)]}})
    with pytest.raises(InputError, match="tags a SKU"):
        compile_ruleset({"sku_tags": {"S" * 65: ["x"]}})


# Pieces of conditions, valid and hostile, that hypothesis strings together.
_ATOMS = [
    "weight_g",
    "city",
    "skus",
    "sku_tags",
    "1",
    "0",
    "-1e999999",
    "'a'",
    "'(a+)+$'",
    "'(a)\\\\1'",
    "true",
    "null",
    "$range(1000000)",
    "$abs(weight_g)",
    "$any(skus)",
    "city.length",
    "skus[0]",
    "d'2020-01-01'",
]
_UNARY = ["not ", "-", "(", "["]
_BINARY = [
    " and ",
    " or ",
    " == ",
    " != ",
    " > ",
    " + ",
    " * ",
    " ** ",
    " // ",
    " =~ ",
    " =~~ ",
    " !~ ",
    " in ",
    " ?? ",
]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 6 or draw(st.booleans()):
        atom = draw(st.sampled_from(_ATOMS))
        prefix = draw(st.sampled_from(_UNARY)) * draw(st.integers(0, 600))
        closing = "".join({"(": ")", "[": "]"}.get(ch, "") for ch in reversed(prefix))
        return prefix + atom + closing
    left = draw(expressions(depth + 1))
    right = draw(expressions(depth + 1))
    shape = draw(st.integers(0, 3))
    if shape == 0:
        return f"({left}{draw(st.sampled_from(_BINARY))}{right})"
    if shape == 1:
        return f"{left} ? {right} : {left}"
    if shape == 2:
        return f"[{left} for x in skus if {right}]"
    return f"{left}{draw(st.sampled_from(_BINARY))}{right}"


_garbage = st.text(alphabet=st.sampled_from(list("()[]{}'\"=~!<>+-*/?:., \\#$abcnotr0129")), max_size=2_000)


def _compiled_or_refused(when: str) -> None:
    refused: InputError | None = None
    try:
        compiled = compile_ruleset(ruleset(when))
    except InputError as error:  # a RuleError names the rule; any other is about the whole ruleset
        refused = error
    if refused is not None:
        assert refused.message
        if isinstance(refused, RuleError):
            assert refused.rule == 3
            assert refused.message.startswith("rule 3 ('hostile'): ")
        return
    assert isinstance(compiled, CompiledRuleset)
    decision = compiled.decide(order(city="a" * 2_000 + "!"), 500)
    assert decision.carrier in {"HIT", "MISS"}


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions())
def test_generated_expressions_compile_within_caps_or_are_refused_with_a_typed_error(when: str) -> None:
    _compiled_or_refused(when[:2_000])


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(_garbage)
def test_generated_garbage_is_refused_with_a_typed_error_never_a_crash(when: str) -> None:
    _compiled_or_refused(when)
