"""The decision center's calls: ruleset versions, their simulation against past orders, publish."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.access.callers import EditsRulesets, ReadsSetup, Store
from cloud.decisions import rulesets
from cloud.records import audit
from dockside.rules import MAX_DOCUMENTS

__all__ = ["RulesetIn", "router"]

router = APIRouter(prefix="/api/v1")
RulesetName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]
_Short = Annotated[str, StringConstraints(max_length=64)]


class DocumentIn(BaseModel):
    """A document a parcel gets besides its shipping label (`dockside.rules` checks the whole list)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["packing_slip", "carton_label", "customs_declaration"]
    template: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    printer_role: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "label"
    # Only on a carton_label (dockside.rules refuses it elsewhere): the code (<= 32, as a carrier
    # account's) of the sscc carrier account whose leased SSCCs it takes; publish checks it exists.
    carrier: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class Actions(BaseModel):
    """What a rule (or the default) decides; a missing action keeps the default's."""

    model_config = ConfigDict(extra="forbid")

    carrier: _Short | None = None
    service: _Short | None = None
    template: _Short | None = None
    printer_role: _Short | None = None
    weight_tolerance_g: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    # The parcel's documents after its shipping label, in print order ([]: the label alone).
    documents: Annotated[list[DocumentIn], Field(max_length=MAX_DOCUMENTS)] | None = None


class Rule(BaseModel):
    """One rule: a rule-engine condition over the parcel's facts, and its actions."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(max_length=100)] = ""
    when: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    then: Actions = Actions()


class RulesetIn(BaseModel):
    """A ruleset version: the default decision, ordered rules (first match wins) and SKU tags."""

    model_config = ConfigDict(extra="forbid")

    default: Actions = Actions()
    rules: Annotated[list[Rule], Field(max_length=500)] = []
    sku_tags: Annotated[
        dict[Annotated[str, StringConstraints(max_length=64)], list[_Short]], Field(max_length=100_000)
    ] = {}


class SimulationIn(BaseModel):
    """How many of the most recent orders to decide under the draft."""

    model_config = ConfigDict(extra="forbid")

    last: Annotated[int, Field(ge=1, le=rulesets.MAX_SIMULATED_ORDERS)] = 1000


@router.post("/rulesets/{name}/versions", status_code=201, summary="Create a ruleset version (a draft)")
def create_ruleset_version(name: RulesetName, body: RulesetIn, caller: EditsRulesets, store: Store) -> Any:
    """Check every condition and store the ruleset as the next version of its name, not yet active.

    422 names the rule (number and name) and the reason: a wrong condition, or one past a limit
    (`rule_too_complex`, `unsupported_regex`, `unsupported_function`, `ruleset_too_large`)."""
    document = body.model_dump(exclude_none=True)
    for index, rule in enumerate(document["rules"], start=1):
        rule["name"] = rule["name"] or f"rule {index}"
    with store.unit_of_work():
        made = rulesets.create_ruleset_version(store, caller.tenant_id, name, document, caller.token_name)
        audit.record(store, caller, "create_ruleset_version", "ruleset", name, None, made)
    return made


@router.get("/rulesets/{name}/versions", summary="List a ruleset's versions")
def list_ruleset_versions(name: RulesetName, caller: ReadsSetup, store: Store) -> Any:
    """Every version of a ruleset, oldest first; `active` marks the one agents decide with."""
    return {"versions": rulesets.list_ruleset_versions(store, caller.tenant_id, name)}


@router.get("/rulesets/{name}/versions/{n}", summary="One ruleset version")
def get_ruleset_version(name: RulesetName, n: VersionNumber, caller: ReadsSetup, store: Store) -> Any:
    """One version of a ruleset."""
    return rulesets.get_ruleset_version(store, caller.tenant_id, name, n)


@router.post("/rulesets/{name}/versions/{n}/simulate", summary="Simulate a ruleset version on past orders")
def simulate_ruleset_version(
    name: RulesetName, n: VersionNumber, caller: EditsRulesets, store: Store, body: SimulationIn | None = None
) -> Any:
    """Decide the last N orders under the active version and this one: what changes, with a summary."""
    last = (body or SimulationIn()).last
    return rulesets.simulate_ruleset_version(
        store, caller.tenant_id, name, n, last, warehouses=caller.warehouses
    )


@router.post("/rulesets/{name}/versions/{n}/publish", summary="Publish a ruleset version")
def publish_ruleset_version(name: RulesetName, n: VersionNumber, caller: EditsRulesets, store: Store) -> Any:
    """Make version n the active one of its name and sync it to every agent of the tenant.

    422 `ruleset_references_missing` when a template it names is not published to one of the
    tenant's warehouses, a printer role it names has no printer at one of their stations, or a
    carton label's carrier is not an sscc carrier account of the tenant."""
    before = audit.active_version_before(
        partial(rulesets.list_ruleset_versions, store, caller.tenant_id, name)
    )
    with store.unit_of_work():
        published = rulesets.publish_ruleset_version(store, caller.tenant_id, name, n)
        if before["active_version"] != n:
            audit.record(
                store, caller, "publish_ruleset_version", "ruleset", name, before, {"active_version": n}
            )
    return published
