"""The decision center's evaluation: which carrier, service, template and printer a parcel gets.

The same code runs in the cloud (validation at save, simulation) and at the edge (the pack path).
A ruleset is a JSON object:

    {"default": {"carrier": "UPS", "service": "ground", "template": "shipping-4x6"},
     "rules": [{"name": "heavy to freight", "when": "weight_g > 20000 and country == 'US'",
                "then": {"carrier": "FREIGHTCO", "weight_tolerance_g": 500}}],
     "sku_tags": {"BATTERY-1": ["hazmat"]}}

Rules are tried in order; the first whose condition holds lays its actions over the default, and
no rule matching leaves the default.

Besides the shipping label (always the parcel's first document, decided by `carrier`, `service`,
`template` and `printer_role`), the `documents` action lists the other documents a parcel gets,
each a print job of its own on a printer of its role:

    "then": {"documents": [{"kind": "packing_slip", "template": "slip-80mm", "printer_role": "slip"},
                           {"kind": "customs_declaration", "template": "cn23-4x6"}]}

A rule's `documents` replaces the default's whole list (`[]` prints the shipping label alone).
A `carton_label` may name `"carrier"`: the code of an `sscc` carrier account, whose leased SSCCs
give the carton label an SSCC of its own (taken in the document job's transaction, voided like any
number if the job ends unknown or failed). Without it the carton label shows the parcel's SSCC
when its shipping label has one, and none otherwise (the agent logs a warning): whether a
parcel's label carries an SSCC depends on the carrier decided for it, so it is not refused here.
Rules see the parcel's number and the parcel count (`parcel_number`, `parcel_count`), its real
dimensions, and `international`: whether the destination country differs from the warehouse's
ship-from country (which the caller passes; false when it is not known).

Conditions are `rule-engine` expressions (a small typed language, never Python `eval`) over the
parcel's facts (`FACTS`); they are type-checked when a ruleset is compiled, so a bad condition is
refused at save with the rule's number and the reason.
Rules are untrusted: `dockside.rule_conditions` bounds each condition's size and depth and runs its
regexes on RE2 (linear time), and the caps below bound a whole ruleset, so deciding a parcel costs
a bounded amount of work wherever it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import rule_engine

from dockside.errors import InputError
from dockside.rule_conditions import MAX_WORK, RuleError, compile_condition
from dockside.shipping.parcels import DocumentKind

__all__ = [
    "ACTIONS",
    "DEFAULT_DECISION",
    "DOCUMENT_KINDS",
    "FACTS",
    "MAX_DOCUMENTS",
    "MAX_RULES",
    "MAX_RULESET_CONDITION_CHARS",
    "MAX_SKU_TAGS",
    "MAX_TAGS_PER_SKU",
    "CompiledRuleset",
    "Decision",
    "DocumentAction",
    "RuleError",
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
    "length_mm": _T.FLOAT,  # the parcel's dimensions when known (0 otherwise)
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
    "international": _T.BOOLEAN,  # destination country != the warehouse's ship-from country
    "parcel_number": _T.FLOAT,  # which parcel of the order this is, from 1
    "parcel_count": _T.FLOAT,  # how many parcels the order ships as (so far)
}
ACTIONS = ("carrier", "service", "template", "printer_role", "weight_tolerance_g", "documents")
# What the `documents` action may list: the shipping label is not among them (it is always first).
DOCUMENT_KINDS = tuple(kind.value for kind in DocumentKind if kind != DocumentKind.SHIPPING_LABEL)
MAX_DOCUMENTS = 8  # documents besides the shipping label, a parcel
_CONTEXT = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(FACTS))
MAX_RULES = 500
# Every condition together: parsing them is what an agent does when a ruleset arrives.
MAX_RULESET_CONDITION_CHARS = 100_000
MAX_SKU_TAGS = 100_000  # SKUs with tags
MAX_TAGS_PER_SKU = 32
_MAX_TEXT = 64


@dataclass(frozen=True, slots=True)
class DocumentAction:
    """One document a parcel gets besides its shipping label: which, from which template, on which
    printer role."""

    kind: DocumentKind
    template: str
    printer_role: str = "label"
    # A carton label's own SSCC comes from this sscc carrier account's leases ("" for none).
    carrier: str = ""

    def to_json(self) -> dict[str, str]:
        """The action as a ruleset writes it."""
        written = {"kind": self.kind.value, "template": self.template, "printer_role": self.printer_role}
        if self.carrier:
            written["carrier"] = self.carrier
        return written


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules decided for one parcel."""

    carrier: str
    service: str
    template: str
    printer_role: str = "label"
    weight_tolerance_g: int | None = None
    rule: str | None = None  # the name of the rule that decided; None for the default
    # The parcel's documents after its shipping label, in print order.
    documents: tuple[DocumentAction, ...] = ()


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

    def can_set(self, action: str) -> bool:
        """Whether any decision of this ruleset (its default or a rule) sets `action`."""
        return action in self.default or any(action in rule.then for rule in self.rules)

    def named(self, action: str) -> list[tuple[str, str]]:
        """(where, value) for each place that sets `action`: "the default", "rule 2 ('hazmat')".

        For "template" and "printer_role" the documents' own count too ("rule 2 ('b2b'), its
        packing_slip document"), so publishing checks every template and role a parcel may need.
        """
        places = [("the default", self.default)] + [
            (f"rule {number} ({rule.name!r})", rule.then) for number, rule in enumerate(self.rules, start=1)
        ]
        found = []
        for where, actions in places:
            if action in actions:
                found.append((where, str(actions[action])))
            if action in ("template", "printer_role"):
                found.extend(
                    (f"{where}, its {document.kind.value} document", str(getattr(document, action)))
                    for document in actions.get("documents", ())
                )
        return found

    def decide(
        self,
        order: Mapping[str, Any],
        weight_g: int,
        dimensions_mm: Sequence[float] | None = (),
        *,
        parcel_number: int = 1,
        parcel_count: int = 1,
        ship_from_country: str = "",
    ) -> Decision:
        """The decision for parcel `parcel_number` (of `parcel_count`) of `order` weighing `weight_g`."""
        facts = parcel_facts(
            order,
            weight_g,
            self.sku_tags,
            dimensions_mm,
            parcel_number=parcel_number,
            parcel_count=parcel_count,
            ship_from_country=ship_from_country,
        )
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
        documents=tuple(actions.get("documents", ())),
    )


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _expected_parcel(order: Mapping[str, Any], parcel_number: int) -> Mapping[str, Any]:
    """What the OMS said of parcel `parcel_number` (the order's `parcels`), or {} when nothing."""
    parcels = order.get("parcels") or ()
    if isinstance(parcels, Sequence) and 1 <= parcel_number <= len(parcels):
        expected = parcels[parcel_number - 1]
        if isinstance(expected, Mapping):
            return expected
    return {}


def parcel_facts(
    order: Mapping[str, Any],
    weight_g: int,
    sku_tags: Mapping[str, Sequence[str]] | None = None,
    dimensions_mm: Sequence[float] | None = (),
    *,
    parcel_number: int = 1,
    parcel_count: int = 1,
    ship_from_country: str = "",
) -> dict[str, Any]:
    """The facts a condition sees for parcel `parcel_number` (of `parcel_count`) of `order` (an
    Order's JSON) weighing `weight_g`.

    The dimensions are the parcel's as measured or picked at the station (`dimensions_mm`), else
    the ones the OMS sent for that parcel, else 0; its expected weight is the OMS's for that parcel,
    else the order's. `international` is false when `ship_from_country` is not known ("").
    """
    ship_to = order.get("ship_to") or {}
    value = order.get("value") or {}
    lines = order.get("lines") or []
    expected = _expected_parcel(order, parcel_number)
    skus = tuple(str(line.get("sku", "")) for line in lines)
    tags = sorted({tag for sku in skus for tag in (sku_tags or {}).get(sku, ())})
    given = list(dimensions_mm or expected.get("dimensions_mm") or ())[:3]
    dims = [_number(d) for d in given] + [Decimal(0)] * (3 - len(given))
    weight = Decimal(int(weight_g))
    country = str(ship_to.get("country", ""))
    expected_weight = expected.get("expected_weight_g")
    return {
        "weight_g": weight,
        "weight_kg": weight / 1000,
        "expected_weight_g": _number(
            expected_weight if expected_weight is not None else order.get("expected_weight_g")
        ),
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
        "international": bool(ship_from_country) and country != ship_from_country,
        "parcel_number": Decimal(int(parcel_number)),
        "parcel_count": Decimal(int(parcel_count)),
    }


def _check_actions(where: str, actions: Any) -> Mapping[str, Any]:
    if not isinstance(actions, Mapping):
        raise InputError(f"{where} must be an object of actions ({', '.join(ACTIONS)})")
    unknown = sorted(set(actions) - set(ACTIONS))
    if unknown:
        raise InputError(f"{where} has unknown actions {unknown}: use only {', '.join(ACTIONS)}")
    for key in ("carrier", "service", "template", "printer_role"):
        if key in actions and (not isinstance(actions[key], str) or len(actions[key]) > _MAX_TEXT):
            raise InputError(f"{where}: {key} must be a text of at most {_MAX_TEXT} characters")
    tolerance = actions.get("weight_tolerance_g")
    if tolerance is not None and (
        isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 0 <= tolerance <= 1_000_000
    ):
        raise InputError(f"{where}: weight_tolerance_g must be a whole number of grams from 0 to 1,000,000")
    checked = dict(actions)
    if "documents" in actions:
        checked["documents"] = _documents(where, actions["documents"])
    return checked


_DOCUMENT_FIELDS = frozenset({"kind", "template", "printer_role", "carrier"})
MAX_CARRIER_CHARS = 32  # a carrier account's code
_DOCUMENT_EXAMPLE = '{"kind": "packing_slip", "template": "slip-80mm", "printer_role": "slip"}'


def _documents(where: str, documents: Any) -> tuple[DocumentAction, ...]:
    """The `documents` action checked: at most MAX_DOCUMENTS, each kind once, each with a template."""
    if not isinstance(documents, list):
        raise InputError(
            f"{where}: documents must be a list of documents such as [{_DOCUMENT_EXAMPLE}] ([] for none)"
        )
    if len(documents) > MAX_DOCUMENTS:
        raise InputError(
            f"{where}: documents lists {len(documents)} documents; a parcel gets at most {MAX_DOCUMENTS} "
            "besides its shipping label",
            code="ruleset_too_large",
        )
    kinds = ", ".join(DOCUMENT_KINDS)
    checked: list[DocumentAction] = []
    for number, document in enumerate(documents, start=1):
        at = f"{where}: document {number}"
        if not isinstance(document, Mapping):
            raise InputError(f"{at} must be an object such as {_DOCUMENT_EXAMPLE}")
        unknown = sorted(str(key)[:_MAX_TEXT] for key in set(document) - _DOCUMENT_FIELDS)
        if unknown:
            raise InputError(
                f"{at} has unknown fields {unknown}: use kind, template, printer_role (and carrier for "
                "a carton_label)"
            )
        kind = document.get("kind")
        if kind == DocumentKind.SHIPPING_LABEL:
            raise InputError(
                f"{at}: the shipping label is always a parcel's first document, decided by the template "
                "and printer_role actions: leave it out of documents"
            )
        if not isinstance(kind, str) or kind not in DOCUMENT_KINDS:
            shown = repr(kind)[:_MAX_TEXT] if kind is not None else "missing"
            raise InputError(f"{at}: kind {shown} is not a document kind: use one of {kinds}")
        if any(done.kind == kind for done in checked):
            raise InputError(
                f"{at}: {kind} is listed twice; a parcel gets each document once: drop one of them"
            )
        for key in ("template", "printer_role"):
            text = document.get(key, "label" if key == "printer_role" else None)
            if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
                raise InputError(
                    f"{at} ({kind}): {key} must be a text of 1 to {_MAX_TEXT} characters"
                    + (": name the template that prints it" if key == "template" else "")
                )
        carrier = document.get("carrier", "")
        if "carrier" in document:
            if kind != DocumentKind.CARTON_LABEL:
                raise InputError(
                    f"{at} ({kind}): carrier is only for a carton_label (the sscc carrier account whose "
                    "SSCCs it takes): leave it out"
                )
            if not isinstance(carrier, str) or not carrier.strip() or len(carrier) > MAX_CARRIER_CHARS:
                raise InputError(
                    f"{at} ({kind}): carrier must be the code of an sscc carrier account, 1 to "
                    f"{MAX_CARRIER_CHARS} characters"
                )
        checked.append(
            DocumentAction(
                DocumentKind(kind), document["template"], document.get("printer_role", "label"), carrier
            )
        )
    return tuple(checked)


def _sku_tags(tags_in: Any) -> dict[str, tuple[str, ...]]:
    example = '{"BAT-1": ["hazmat"]}'
    if not isinstance(tags_in, Mapping) or not all(
        isinstance(tags, list) and all(isinstance(tag, str) for tag in tags) for tags in tags_in.values()
    ):
        raise InputError(f"'sku_tags' must map each SKU to a list of texts, e.g. {example}")
    if len(tags_in) > MAX_SKU_TAGS:
        raise InputError(
            f"'sku_tags' names {len(tags_in):,} SKUs; at most {MAX_SKU_TAGS:,} are allowed",
            code="ruleset_too_large",
        )
    for sku, tags in tags_in.items():
        if (
            len(str(sku)) > _MAX_TEXT
            or len(tags) > MAX_TAGS_PER_SKU
            or any(len(tag) > _MAX_TEXT for tag in tags)
        ):
            raise InputError(
                f"'sku_tags' of SKU {str(sku)[:_MAX_TEXT]!r}: a SKU and each tag are at most {_MAX_TEXT} "
                f"characters, with at most {MAX_TAGS_PER_SKU} tags a SKU",
                code="ruleset_too_large",
            )
    return {str(sku): tuple(tags) for sku, tags in tags_in.items()}


def compile_ruleset(ruleset: Mapping[str, Any]) -> CompiledRuleset:
    """Parse and type-check a ruleset; InputError says which rule is wrong and why."""
    if not isinstance(ruleset, Mapping):
        raise InputError("a ruleset must be a JSON object with 'default' and 'rules'")
    unknown = sorted(set(ruleset) - {"name", "version", "default", "rules", "sku_tags"})
    if unknown:
        raise InputError(f"the ruleset has unknown fields {unknown}: use default, rules and sku_tags")
    default = _check_actions("the default", ruleset.get("default", {}))
    rules_in = ruleset.get("rules", [])
    if not isinstance(rules_in, list) or len(rules_in) > MAX_RULES:
        raise InputError(f"'rules' must be a list of at most {MAX_RULES} rules", code="ruleset_too_large")
    total = sum(
        len(rule.get("when", ""))
        for rule in rules_in
        if isinstance(rule, Mapping) and isinstance(rule.get("when"), str)
    )
    if total > MAX_RULESET_CONDITION_CHARS:
        raise InputError(
            f"the ruleset's conditions hold {total:,} characters together; at most "
            f"{MAX_RULESET_CONDITION_CHARS:,} are allowed: merge or drop rules",
            code="ruleset_too_large",
        )
    rules = []
    work: list[tuple[int, int, str]] = []  # (steps, number, name) of each rule
    facts = ", ".join(FACTS)
    for number, rule in enumerate(rules_in, start=1):
        if not isinstance(rule, Mapping) or set(rule) - {"name", "when", "then"}:
            raise RuleError(
                f"rule {number} must be an object with 'name', 'when' and 'then'", rule=number, name=""
            )
        name = rule.get("name", f"rule {number}")
        if not isinstance(name, str) or len(name) > 100:
            raise RuleError(
                f"rule {number}: 'name' must be a text of at most 100 characters", rule=number, name=""
            )
        condition = compile_condition(rule.get("when"), _CONTEXT, facts, number=number, name=name)
        rules.append(
            _Rule(name, condition.rule, _check_actions(f"rule {number} ({name!r})", rule.get("then", {})))
        )
        work.append((condition.work, number, name))
    total = sum(steps for steps, _, _ in work)
    if total > MAX_WORK:
        heaviest = ", ".join(
            f"rule {n} ({name!r}): {steps:,}" for steps, n, name in sorted(work, reverse=True)[:3]
        )
        raise InputError(
            f"the ruleset's conditions may take {total:,} steps together for one parcel; at most "
            f"{MAX_WORK:,} are allowed (heaviest {heaviest}): make the loops ([... for ...]) smaller "
            "or drop rules",
            code="ruleset_too_large",
        )
    sku_tags = _sku_tags(ruleset.get("sku_tags", {}))
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
    dimensions_mm: Sequence[float] | None = (),
    *,
    parcel_number: int = 1,
    parcel_count: int = 1,
    ship_from_country: str = "",
) -> Decision:
    """The decision for parcel `parcel_number` (of `parcel_count`) of `order` weighing `weight_g`
    under `ruleset`; `ship_from_country` is the warehouse's (for the `international` fact)."""
    compiled = ruleset if isinstance(ruleset, CompiledRuleset) else _compiled_for(ruleset)
    return compiled.decide(
        order,
        weight_g,
        dimensions_mm,
        parcel_number=parcel_number,
        parcel_count=parcel_count,
        ship_from_country=ship_from_country,
    )
