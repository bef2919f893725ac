"""The decision center's evaluation: ordered rules over parcel facts, validated at compile."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dockside.errors import InputError
from dockside.rules import DEFAULT_DECISION, compile_ruleset, decide, parcel_facts


def _order(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_ref": "R1",
        "warehouse": "WH1",
        "service_level": "standard",
        "ship_to": {"name": "A", "street": "1 Road", "city": "Lyon", "postal_code": "69001", "country": "FR"},
        "lines": [{"sku": "BAT-1", "qty": 2}, {"sku": "TEE-1", "qty": 1}],
        "expected_weight_g": 1200,
        "value": {"amount": "149.90", "currency": "EUR"},
    }
    body.update(overrides)
    return body


RULESET: dict[str, Any] = {
    "default": {"carrier": "POST", "service": "eco", "template": "shipping-4x6"},
    "rules": [
        {
            "name": "heavy",
            "when": "weight_kg > 20",
            "then": {"carrier": "FREIGHT", "weight_tolerance_g": 500},
        },
        {"name": "hazmat", "when": "'hazmat' in sku_tags", "then": {"carrier": "DG", "template": "dg-4x6"}},
        {
            "name": "paris express",
            "when": "country == 'FR' and postal_code =~ '^75' and service_level == 'express'",
            "then": {"service": "express", "printer_role": "express"},
        },
        {"name": "big value", "when": "value >= 1000 and currency == 'EUR'", "then": {"carrier": "SECURE"}},
    ],
    "sku_tags": {"BAT-1": ["hazmat", "battery"]},
}


def test_no_ruleset_keeps_the_foundation_default() -> None:
    decision = decide(_order(), 900)
    assert (decision.carrier, decision.template, decision.service) == (
        DEFAULT_DECISION.carrier,
        DEFAULT_DECISION.template,
        "standard",
    )
    assert decision.rule is None


def test_the_first_matching_rule_lays_its_actions_over_the_default() -> None:
    heavy = decide(_order(), 25_000, RULESET)
    assert (heavy.carrier, heavy.service, heavy.template, heavy.weight_tolerance_g, heavy.rule) == (
        "FREIGHT",
        "eco",
        "shipping-4x6",
        500,
        "heavy",
    )
    hazmat = decide(_order(), 900, RULESET)
    assert (hazmat.carrier, hazmat.template, hazmat.rule) == ("DG", "dg-4x6", "hazmat")
    plain_lines = [{"sku": "TEE-1", "qty": 1}]
    paris = decide(
        _order(lines=plain_lines, service_level="express", ship_to={"country": "FR", "postal_code": "75011"}),
        900,
        RULESET,
    )
    assert (paris.service, paris.printer_role, paris.carrier) == ("express", "express", "POST")
    rich = decide(_order(lines=plain_lines, value={"amount": "1500.00", "currency": "EUR"}), 900, RULESET)
    assert rich.carrier == "SECURE"
    nothing = decide(_order(lines=plain_lines, value=None), 900, RULESET)
    assert (nothing.carrier, nothing.rule) == ("POST", None)


def test_facts_cover_weight_dimensions_destination_value_and_skus() -> None:
    facts = parcel_facts(_order(), 2500, {"BAT-1": ["hazmat"]}, (300, 200, 100))
    assert facts["weight_kg"] == 2.5
    assert (facts["length_mm"], facts["width_mm"], facts["height_mm"]) == (300, 200, 100)
    assert facts["skus"] == ("BAT-1", "TEE-1")
    assert facts["sku_tags"] == ("hazmat",)
    assert facts["units"] == 3
    assert facts["value"] == Decimal("149.90")
    oversized = {"rules": [{"name": "long", "when": "length_mm > 1000", "then": {"carrier": "BULKY"}}]}
    assert decide(_order(), 100, oversized, (1200, 10, 10)).carrier == "BULKY"
    assert decide(_order(), 100, oversized).carrier == DEFAULT_DECISION.carrier


@pytest.mark.parametrize(
    ("ruleset", "needle"),
    [
        (
            {"rules": [{"name": "x", "when": "weight_g >", "then": {}}]},
            "rule 1 ('x'): condition 'weight_g >'",
        ),
        ({"rules": [{"when": "weight_g > 'heavy'", "then": {}}]}, "compare numbers with numbers"),
        ({"rules": [{"when": "wieght_g > 5", "then": {}}]}, "uses 'wieght_g', which is not a parcel fact"),
        ({"rules": [{"when": "__import__('os')", "then": {}}]}, "rule 1"),
        ({"rules": [{"when": "", "then": {}}]}, "'when' must be a condition"),
        ({"rules": [{"when": "x" * 3000, "then": {}}]}, "'when' must be a condition"),
        ({"rules": [{"when": "weight_g > 1", "then": {"colour": "red"}}]}, "unknown actions ['colour']"),
        ({"rules": [{"when": "weight_g > 1", "then": {"weight_tolerance_g": -3}}]}, "weight_tolerance_g"),
        ({"rules": [{"when": "weight_g > 1", "then": {"carrier": 7}}]}, "carrier must be a text"),
        ({"rules": "weight_g > 1"}, "'rules' must be a list"),
        ({"rules": [], "extra": 1}, "unknown fields ['extra']"),
        ({"sku_tags": {"A": "hazmat"}}, "'sku_tags' must map each SKU"),
        ({"default": []}, "the default must be an object"),
    ],
)
def test_bad_rulesets_are_refused_with_the_rule_and_the_reason(ruleset: dict[str, Any], needle: str) -> None:
    with pytest.raises(InputError) as caught:
        compile_ruleset(ruleset)
    assert needle in caught.value.message


def test_a_ruleset_is_compiled_once_per_dict() -> None:
    ruleset = {"rules": [{"when": "weight_g > 1", "then": {"carrier": "A"}}]}
    assert decide(_order(), 5, ruleset).carrier == "A"
    ruleset["rules"] = [{"when": "weight_g > 1", "then": {"carrier": "B"}}]
    # The edge replaces a synced ruleset with a new dict; the same dict keeps its compiled form.
    assert decide(_order(), 5, ruleset).carrier == "A"
    assert decide(_order(), 5, dict(ruleset)).carrier == "B"
