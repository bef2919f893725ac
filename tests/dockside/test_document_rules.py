"""Document sets decided by the ruleset, and the parcel facts rules see (number, count, dimensions,
international); hostile `documents` actions are refused at compile with the place and the reason."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockside.errors import InputError
from dockside.rules import (
    DOCUMENT_KINDS,
    MAX_DOCUMENTS,
    DocumentAction,
    compile_ruleset,
    decide,
    parcel_facts,
)
from dockside.shipping.parcels import DocumentKind

SLIP = {"kind": "packing_slip", "template": "slip-80mm", "printer_role": "slip"}
CARTON = {"kind": "carton_label", "template": "gs1-carton-4x6", "printer_role": "label"}
CUSTOMS = {"kind": "customs_declaration", "template": "cn23-4x6", "printer_role": "label"}

RULESET: dict[str, Any] = {
    "default": {"carrier": "POST", "template": "shipping-4x6", "documents": [SLIP]},
    "rules": [
        {"name": "abroad", "when": "international", "then": {"documents": [CUSTOMS, SLIP]}},
        {
            "name": "b2b cartons",
            "when": "service_level == 'b2b' and parcel_number == 1",
            "then": {"carrier": "PALLET", "documents": [CARTON, SLIP]},
        },
        {"name": "b2b later cartons", "when": "service_level == 'b2b'", "then": {"documents": [CARTON]}},
        {"name": "tiny", "when": "weight_g < 100", "then": {"documents": []}},
    ],
}


def _order(country: str = "FR", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_ref": "R1",
        "warehouse": "WH1",
        "service_level": "standard",
        "ship_to": {"name": "A", "street": "1 Rd", "city": "Lyon", "postal_code": "69", "country": country},
        "lines": [{"sku": "TEE-1", "qty": 1}],
        "expected_weight_g": 1200,
    }
    body.update(overrides)
    return body


def _kinds(decision: Any) -> list[str]:
    return [document.kind.value for document in decision.documents]


def test_the_ruleset_decides_each_parcels_documents() -> None:
    home = decide(_order("FR"), 900, RULESET, ship_from_country="FR")
    assert (home.rule, _kinds(home)) == (None, ["packing_slip"])
    assert home.documents == (DocumentAction(DocumentKind.PACKING_SLIP, "slip-80mm", "slip"),)

    abroad = decide(_order("CH"), 900, RULESET, ship_from_country="FR")
    assert (abroad.rule, _kinds(abroad)) == ("abroad", ["customs_declaration", "packing_slip"])
    assert [d.template for d in abroad.documents] == ["cn23-4x6", "slip-80mm"]

    b2b = _order("FR", service_level="b2b")
    first = decide(b2b, 9000, RULESET, ship_from_country="FR", parcel_number=1, parcel_count=3)
    third = decide(b2b, 9000, RULESET, ship_from_country="FR", parcel_number=3, parcel_count=3)
    assert (first.carrier, _kinds(first)) == ("PALLET", ["carton_label", "packing_slip"])
    # A rule that does not set the carrier keeps the default's; its documents replace the default's.
    assert (third.carrier, third.rule, _kinds(third)) == ("POST", "b2b later cartons", ["carton_label"])

    tiny = decide(_order("FR"), 50, RULESET, ship_from_country="FR")
    assert (tiny.rule, tiny.documents) == ("tiny", ())
    # The shipping label stays decided by the template and printer role actions.
    assert (tiny.template, tiny.printer_role) == ("shipping-4x6", "label")


def test_no_documents_action_means_the_shipping_label_alone() -> None:
    assert decide(_order(), 900).documents == ()
    assert decide(_order(), 900, {"default": {"carrier": "POST"}}).documents == ()


def test_a_document_without_a_printer_role_prints_on_the_label_printer() -> None:
    ruleset = {"default": {"documents": [{"kind": "packing_slip", "template": "slip-4x6"}]}}
    (slip,) = decide(_order(), 900, ruleset).documents
    assert (slip.printer_role, slip.to_json()) == (
        "label",
        {"kind": "packing_slip", "template": "slip-4x6", "printer_role": "label"},
    )


@pytest.mark.parametrize(
    ("country", "ship_from", "international"),
    [("FR", "FR", False), ("CH", "FR", True), ("US", "", False)],
)
def test_international_compares_the_destination_with_the_ship_from_country(
    country: str, ship_from: str, international: bool
) -> None:
    order = _order(country)
    assert parcel_facts(order, 900, ship_from_country=ship_from)["international"] is international
    abroad = {"when": "international", "then": {"carrier": "ABROAD"}}
    rules = {"default": {"carrier": "HOME"}, "rules": [abroad]}
    assert decide(order, 900, rules, ship_from_country=ship_from).carrier == (
        "ABROAD" if international else "HOME"
    )


def test_rules_see_the_parcels_number_count_and_real_dimensions() -> None:
    order = _order(
        expected_weight_g=3000,
        parcels=[
            {"expected_weight_g": 1000, "dimensions_mm": [400, 300, 200]},
            {"expected_weight_g": 2000},
        ],
    )
    first = parcel_facts(order, 990, parcel_number=1, parcel_count=2)
    assert (first["parcel_number"], first["parcel_count"]) == (1, 2)
    # The OMS's dimensions and expected weight for that parcel, when the station gave none.
    assert (first["length_mm"], first["width_mm"], first["height_mm"]) == (400, 300, 200)
    assert first["expected_weight_g"] == 1000
    second = parcel_facts(order, 2010, parcel_number=2, parcel_count=2)
    assert (second["length_mm"], second["width_mm"], second["height_mm"]) == (0, 0, 0)
    assert second["expected_weight_g"] == 2000
    # What the station measured wins over what the OMS said.
    measured = parcel_facts(order, 990, dimensions_mm=(610, 410, 50), parcel_number=1, parcel_count=2)
    assert (measured["length_mm"], measured["width_mm"], measured["height_mm"]) == (610, 410, 50)
    # A parcel the OMS did not list (added at the station) has the order's expected weight.
    added = parcel_facts(order, 500, None, parcel_number=3, parcel_count=3)
    assert (added["expected_weight_g"], added["length_mm"]) == (3000, 0)
    # Old callers (no parcel keywords, dimensions positional) see parcel 1 of 1.
    old = parcel_facts(_order(), 900, {}, (10, 20, 30))
    assert (old["parcel_number"], old["parcel_count"], old["international"]) == (1, 1, False)
    assert (old["length_mm"], old["height_mm"]) == (10, 30)

    long_box = {"rules": [{"when": "length_mm > 350 and parcel_count > 1", "then": {"carrier": "BULKY"}}]}
    assert decide(order, 990, long_box, parcel_number=1, parcel_count=2).carrier == "BULKY"
    assert decide(order, 990, long_box, parcel_number=2, parcel_count=2).carrier != "BULKY"


def test_publishing_checks_see_every_documents_template_and_printer_role() -> None:
    compiled = compile_ruleset(RULESET)
    templates = compiled.named("template")
    assert ("the default", "shipping-4x6") in templates
    assert ("the default, its packing_slip document", "slip-80mm") in templates
    assert ("rule 2 ('b2b cartons'), its carton_label document", "gs1-carton-4x6") in templates
    assert ("rule 1 ('abroad'), its customs_declaration document", "cn23-4x6") in templates
    roles = {role for _, role in compiled.named("printer_role")}
    assert roles == {"slip", "label"}
    assert compiled.named("carrier") == [("the default", "POST"), ("rule 2 ('b2b cartons')", "PALLET")]


def _refusal(documents: Any, *, where: str = "rule") -> InputError:
    ruleset: dict[str, Any]
    if where == "rule":
        ruleset = {"rules": [{"name": "docs", "when": "weight_g > 1", "then": {"documents": documents}}]}
    else:
        ruleset = {"default": {"documents": documents}}
    with pytest.raises(InputError) as caught:
        compile_ruleset(ruleset)
    return caught.value


@pytest.mark.parametrize(
    ("documents", "needle"),
    [
        ({"kind": "packing_slip"}, "documents must be a list of documents"),
        ("packing_slip", "documents must be a list of documents"),
        (None, "documents must be a list of documents"),
        (["packing_slip"], "document 1 must be an object"),
        ([SLIP, 7], "document 2 must be an object"),
        ([{"kind": "invoice", "template": "x"}], "kind 'invoice' is not a document kind: use one of"),
        ([{"template": "x"}], "kind missing is not a document kind"),
        ([{"kind": 3, "template": "x"}], "kind 3 is not a document kind"),
        ([{"kind": ["packing_slip"], "template": "x"}], "kind ['packing_slip'] is not a document kind"),
        ([{"kind": "shipping_label", "template": "x"}], "the shipping label is always a parcel's first"),
        ([{"kind": "packing_slip"}], "(packing_slip): template must be a text of 1 to 64 characters"),
        ([{"kind": "packing_slip", "template": ""}], "template must be a text of 1 to 64"),
        ([{"kind": "packing_slip", "template": "   "}], "template must be a text of 1 to 64"),
        ([{"kind": "packing_slip", "template": "t" * 65}], "template must be a text of 1 to 64"),
        ([{"kind": "packing_slip", "template": 12}], "template must be a text"),
        ([{"kind": "packing_slip", "template": "s", "printer_role": None}], "printer_role must be a text"),
        ([{"kind": "packing_slip", "template": "s", "printer_role": ""}], "printer_role must be a text"),
        ([{"kind": "packing_slip", "template": "s", "copies": 2}], "unknown fields ['copies']"),
        ([SLIP, CARTON, SLIP], "document 3: packing_slip is listed twice"),
        ([SLIP] * (MAX_DOCUMENTS + 1), f"a parcel gets at most {MAX_DOCUMENTS}"),
        ([SLIP] * 100_000, f"lists 100000 documents; a parcel gets at most {MAX_DOCUMENTS}"),
    ],
)
def test_hostile_document_actions_are_refused_with_the_place_and_the_reason(
    documents: Any, needle: str
) -> None:
    refused = _refusal(documents)
    assert needle in refused.message
    assert refused.message.startswith("rule 1 ('docs')")
    assert "Traceback" not in refused.message


def test_a_bad_document_in_the_default_names_the_default() -> None:
    refused = _refusal([{"kind": "waybill", "template": "x"}], where="default")
    assert refused.message.startswith("the default: document 1: kind 'waybill'")
    assert all(kind in refused.message for kind in DOCUMENT_KINDS)


def test_too_many_documents_is_a_size_refusal_and_a_huge_key_is_cut_short() -> None:
    assert _refusal([SLIP] * (MAX_DOCUMENTS + 1)).code == "ruleset_too_large"
    refused = _refusal([{"kind": "packing_slip", "template": "s", "x" * 100_000: 1}])
    assert "unknown fields" in refused.message
    assert len(refused.message) < 400
    refused = _refusal([{"kind": "k" * 100_000, "template": "s"}])
    assert len(refused.message) < 400


def test_every_kind_at_once_within_the_cap_compiles() -> None:
    documents = [{"kind": kind, "template": f"{kind}-t"} for kind in DOCUMENT_KINDS]
    decision = decide(_order(), 900, {"default": {"documents": documents}})
    assert _kinds(decision) == list(DOCUMENT_KINDS)
    assert "shipping_label" not in DOCUMENT_KINDS


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from([*DOCUMENT_KINDS, "shipping_label", "", "PACKING_SLIP"]) | _JSON,
        "template": st.text(max_size=70) | _JSON,
        "printer_role": st.text(max_size=70) | _JSON,
        "extra": _JSON,
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(_DOCUMENT | _JSON, max_size=10) | _JSON)
def test_generated_document_actions_compile_or_are_refused_never_a_crash(documents: Any) -> None:
    ruleset = {"default": {"documents": documents}}
    try:
        compiled = compile_ruleset(json.loads(json.dumps(ruleset)))
    except InputError as refused:
        refusal = refused.message
    else:
        refusal = ""
    if refusal:
        assert refusal.startswith("the default")
        return
    decided = compiled.decide(_order(), 900)
    assert len(decided.documents) == len(documents) <= MAX_DOCUMENTS
    assert len({document.kind for document in decided.documents}) == len(documents)
    assert all(document.template.strip() for document in decided.documents)


def test_the_cloud_api_takes_exactly_the_document_kinds_the_rules_allow() -> None:
    from cloud.api.rulesets import DocumentIn

    assert get_args(DocumentIn.model_fields["kind"].annotation) == DOCUMENT_KINDS
    default_role = DocumentAction(DocumentKind.PACKING_SLIP, "slip").printer_role
    assert DocumentIn.model_fields["printer_role"].default == default_role
