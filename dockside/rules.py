"""The decision center's evaluation: which carrier, service, template and printer a parcel gets.

The same code runs in the cloud (validation at save, simulation) and at the edge (the pack path).
A ruleset is a JSON object:

    {"default": {"carrier": "UPS", "service": "ground", "template": "shipping-4x6"},
     "rules": [{"name": "heavy to freight", "when": "weight_g > 20000 and country == 'US'",
                "then": {"carrier": "FREIGHTCO", "weight_tolerance_g": 500}}],
     "sku_tags": {"BATTERY-1": ["hazmat"]}}

Rules are tried in order; the first whose condition holds lays its actions over the default, and
no rule matching leaves the default. Conditions are `rule-engine` expressions (a small typed
language, never Python `eval`) over the parcel's facts (`FACTS`); they are type-checked when a
ruleset is compiled, so a bad condition is refused at save with the rule's number and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import rule_engine

from dockside.errors import InputError

__all__ = [
    "ACTIONS",
    "DEFAULT_DECISION",
    "FACTS",
    "CompiledRuleset",
    "Decision",
    "compile_ruleset",
    "decide",
    "parcel_facts",
]

_T = rule_engine.DataType
# The names a condition may use, with their types (what a rule author sees in the docs).
FACTS: dict[str, Any] = {
    "weight_g": _T.FLOAT,  # the parcel's weight from the scale (or the expected weight in simulation)
    "weight_kg": _T.FLOAT,
    "expected_weight_g": _T.FLOAT,  # what the OMS said it should weigh (0 when it did not say)
    "length_mm": _T.FLOAT,  # parcel dimensions when known (0 otherwise)
    "width_mm": _T.FLOAT,
    "height_mm": _T.FLOAT,
    "country": _T.STRING,  # destination, ISO 3166 alpha-2
    "postal_code": _T.STRING,
    "city": _T.STRING,
    "service_level": _T.STRING,
    "value": _T.FLOAT,  # declared order value (0 when not given)
    "currency": _T.STRING,
    "skus": _T.ARRAY(_T.STRING),
    "sku_tags": _T.ARRAY(_T.STRING),  # attributes of the order's SKUs, from the ruleset's sku_tags
    "units": _T.FLOAT,  # total quantity over all lines
    "line_count": _T.FLOAT,
    "warehouse": _T.STRING,
}
ACTIONS = ("carrier", "service", "template", "printer_role", "weight_tolerance_g")
_CONTEXT = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(FACTS))
_MAX_RULES = 500
_MAX_CONDITION = 2_000


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one parcel."""

    carrier: str
    service: str
    template: str
    printer_role: str = "label"
    weight_tolerance_g: int | None = None
    rule: str | None = None  # the name of the rule that decided; None for the default


DEFAULT_DECISION = Decision(carrier="DOCKSIDE", service="", template="shipping-4x6")


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    condition: rule_engine.Rule
    then: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    """A ruleset whose conditions are parsed and type-checked, ready to decide many parcels."""

    default: Mapping[str, Any]
    rules: tuple[_Rule, ...]
    sku_tags: Mapping[str, tuple[str, ...]]

    def decide(
        self, order: Mapping[str, Any], weight_g: int, dimensions_mm: Sequence[float] = ()
    ) -> Decision:
        """The decision for a parcel of `order` weighing `weight_g`."""
        facts = parcel_facts(order, weight_g, self.sku_tags, dimensions_mm)
        for rule in self.rules:
            try:
                matched = rule.condition.matches(facts)
            except rule_engine.errors.EngineError:
                # Typed at compile time; a fact the order lacks (None) makes the rule not apply.
                matched = False
            if matched:
                return _decision(order, {**self.default, **rule.then}, rule.name)
        return _decision(order, self.default, None)


def _decision(order: Mapping[str, Any], actions: Mapping[str, Any], rule: str | None) -> Decision:
    tolerance = actions.get("weight_tolerance_g")
    return Decision(
        carrier=str(actions.get("carrier", DEFAULT_DECISION.carrier)),
        service=str(actions.get("service") or order.get("service_level") or "standard"),
        template=str(actions.get("template", DEFAULT_DECISION.template)),
        printer_role=str(actions.get("printer_role", DEFAULT_DECISION.printer_role)),
        weight_tolerance_g=int(tolerance) if tolerance is not None else None,
        rule=rule,
    )


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def parcel_facts(
    order: Mapping[str, Any],
    weight_g: int,
    sku_tags: Mapping[str, Sequence[str]] | None = None,
    dimensions_mm: Sequence[float] = (),
) -> dict[str, Any]:
    """The facts a condition sees for a parcel of `order` (an Order's JSON) weighing `weight_g`."""
    ship_to = order.get("ship_to") or {}
    value = order.get("value") or {}
    lines = order.get("lines") or []
    skus = tuple(str(line.get("sku", "")) for line in lines)
    tags = sorted({tag for sku in skus for tag in (sku_tags or {}).get(sku, ())})
    dims = [_number(d) for d in dimensions_mm][:3] + [Decimal(0)] * (3 - min(3, len(dimensions_mm)))
    weight = Decimal(int(weight_g))
    return {
        "weight_g": weight,
        "weight_kg": weight / 1000,
        "expected_weight_g": _number(order.get("expected_weight_g")),
        "length_mm": dims[0],
        "width_mm": dims[1],
        "height_mm": dims[2],
        "country": str(ship_to.get("country", "")),
        "postal_code": str(ship_to.get("postal_code", "")),
        "city": str(ship_to.get("city", "")),
        "service_level": str(order.get("service_level") or "standard"),
        "value": _number(value.get("amount")),
        "currency": str(value.get("currency", "")),
        "skus": skus,
        "sku_tags": tuple(tags),
        "units": Decimal(sum(int(line.get("qty", 1)) for line in lines)),
        "line_count": Decimal(len(lines)),
        "warehouse": str(order.get("warehouse", "")),
    }


def _check_actions(where: str, actions: Any) -> Mapping[str, Any]:
    if not isinstance(actions, Mapping):
        raise InputError(f"{where} must be an object of actions ({', '.join(ACTIONS)})")
    unknown = sorted(set(actions) - set(ACTIONS))
    if unknown:
        raise InputError(f"{where} has unknown actions {unknown}: use only {', '.join(ACTIONS)}")
    for key in ("carrier", "service", "template", "printer_role"):
        if key in actions and (not isinstance(actions[key], str) or len(actions[key]) > 64):
            raise InputError(f"{where}: {key} must be a text of at most 64 characters")
    tolerance = actions.get("weight_tolerance_g")
    if tolerance is not None and (
        isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 0 <= tolerance <= 1_000_000
    ):
        raise InputError(f"{where}: weight_tolerance_g must be a whole number of grams from 0 to 1,000,000")
    return dict(actions)


def _condition(where: str, text: Any) -> rule_engine.Rule:
    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_CONDITION:
        raise InputError(f"{where}: 'when' must be a condition of 1 to {_MAX_CONDITION} characters")
    try:
        return rule_engine.Rule(text, context=_CONTEXT)
    except rule_engine.errors.SymbolResolutionError as exc:
        raise InputError(
            f"{where}: condition {text!r} uses {exc.symbol_name!r}, which is not a parcel fact: "
            f"use one of {', '.join(FACTS)}"
        ) from None
    except rule_engine.errors.RuleSyntaxError as exc:
        token = exc.token
        at = f" at {token.value!r} (position {token.lexpos + 1})" if token is not None else " at its end"
        raise InputError(f"{where}: condition {text!r} has a syntax error{at}: fix the expression") from None
    except rule_engine.errors.EngineError as exc:
        raise InputError(
            f"{where}: condition {text!r} is not valid ({exc.message}): compare numbers with numbers "
            "and texts with texts"
        ) from None


def compile_ruleset(ruleset: Mapping[str, Any]) -> CompiledRuleset:
    """Parse and type-check a ruleset; InputError says which rule is wrong and why."""
    if not isinstance(ruleset, Mapping):
        raise InputError("a ruleset must be a JSON object with 'default' and 'rules'")
    unknown = sorted(set(ruleset) - {"name", "version", "default", "rules", "sku_tags"})
    if unknown:
        raise InputError(f"the ruleset has unknown fields {unknown}: use default, rules and sku_tags")
    default = _check_actions("the default", ruleset.get("default", {}))
    rules_in = ruleset.get("rules", [])
    if not isinstance(rules_in, list) or len(rules_in) > _MAX_RULES:
        raise InputError(f"'rules' must be a list of at most {_MAX_RULES} rules")
    rules = []
    for number, rule in enumerate(rules_in, start=1):
        if not isinstance(rule, Mapping) or set(rule) - {"name", "when", "then"}:
            raise InputError(f"rule {number} must be an object with 'name', 'when' and 'then'")
        name = rule.get("name", f"rule {number}")
        if not isinstance(name, str) or len(name) > 100:
            raise InputError(f"rule {number}: 'name' must be a text of at most 100 characters")
        where = f"rule {number} ({name!r})"
        rules.append(
            _Rule(name, _condition(where, rule.get("when")), _check_actions(where, rule.get("then", {})))
        )
    tags_in = ruleset.get("sku_tags", {})
    if not isinstance(tags_in, Mapping) or not all(
        isinstance(tags, list) and all(isinstance(tag, str) for tag in tags) for tags in tags_in.values()
    ):
        raise InputError('\'sku_tags\' must map each SKU to a list of texts, e.g. {"BAT-1": ["hazmat"]}')
    sku_tags = {str(sku): tuple(tags) for sku, tags in tags_in.items()}
    return CompiledRuleset(default=default, rules=tuple(rules), sku_tags=sku_tags)


# The pack path hands the same ruleset dict until a sync replaces it: compile once per dict.
_compiled: dict[int, tuple[Mapping[str, Any], CompiledRuleset]] = {}
_EMPTY = CompiledRuleset(default={}, rules=(), sku_tags={})


def _compiled_for(ruleset: Mapping[str, Any] | None) -> CompiledRuleset:
    if not ruleset:
        return _EMPTY
    held = _compiled.get(id(ruleset))
    if held is not None and held[0] is ruleset:
        return held[1]
    compiled = compile_ruleset(ruleset)
    if len(_compiled) > 64:
        _compiled.clear()
    _compiled[id(ruleset)] = (ruleset, compiled)
    return compiled


def decide(
    order: Mapping[str, Any],
    weight_g: int,
    ruleset: Mapping[str, Any] | CompiledRuleset | None = None,
    dimensions_mm: Sequence[float] = (),
) -> Decision:
    """The decision for a parcel of `order` weighing `weight_g` under `ruleset`."""
    compiled = ruleset if isinstance(ruleset, CompiledRuleset) else _compiled_for(ruleset)
    return compiled.decide(order, weight_g, dimensions_mm)
