"""Labels bought from a carrier API (carriers of tracking kind `api`): bought when the order reaches
its warehouse, voided when it is cancelled or its parcel voided, bought again when the packed weight
falls outside the ruleset's tolerance.

When is an order "released" to its warehouse? Dockside orders are packable as soon as they are
ingested for a warehouse (`created`; `released` is optional and rarely used), so the release a
carrier sees is the order existing for its warehouse in `created` or `released`: that is when its
labels are bought. Which carrier? The OMS may name it per parcel (`parcels[n].carrier`); when it
names an `api` carrier, that one. When it names none, the tenant's active ruleset decides on the
parcel's expected weight (its `expected_weight_g`, else the order's split evenly between its
parcels), as waves do before anything is weighed; when that decision is an `api` carrier, its
label is bought with the decided service. A parcel that already has a label or tracking number
from the OMS is never bought for.

Every network call happens outside any write transaction: read what to buy, call the API, then
write the result in a short transaction that checks the order again (cancelled meanwhile: the new
label is voided at once). A bought label goes on the order's parcel (`parcels[n].label`,
`tracking_number`, `carrier`, `service`), so agents receive it with the order like an OMS label,
and on the parcel row as a document entry {"kind": "shipping_label", "bought": {"label_id",
"adapter", "carrier", "tracking_number", "state", "attempts", "weight_g"}} (cloud.orders.bought_labels).

Errors are decided by type, never by their text: `retry_may_help` (CarrierApiUnavailable) is tried
again on the next round, up to MAX_ATTEMPTS, then an exception asks a person; a refusal
(CarrierApiRefused) opens an exception at once; `may_have_bought` never buys again (a label may
exist and be charged) and opens an exception telling a person to look in the carrier's account.

`run_labels_bought(store, stop)` is the background task (one per cloud process): every round it
buys for orders that need labels, voids labels of cancelled orders and voided parcels, and
relabels parcels whose packed weight was out of tolerance (the packer is told, by an exception,
to reprint that parcel). Its parts: which parcels want a label (cloud.shipping.label_wants),
buying them (label_buying), voiding them at the API (carrier_voids), relabelling (relabels), and
the adapter each call goes through (carrier_calls).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

from sqlalchemy import or_, select

from cloud.orders.parcels import ParcelState
from cloud.shipping.carrier_calls import ROUND_ROWS, AdapterFactory, default_adapter
from cloud.shipping.carrier_voids import mark_cancelled, void_pending_labels
from cloud.shipping.label_buying import buy_order_labels
from cloud.shipping.label_wants import OPEN_STATES, RELABEL_STATES
from cloud.shipping.relabels import relabel, relabels_needed
from cloud.storage import schema
from cloud.storage.periodic import run_every
from cloud.storage.store import CloudStore

__all__ = ["INTERVAL_S", "run_labels_bought", "run_round"]

# How often the background task looks for labels to buy or void.
INTERVAL_S = 30.0


def _orders_to_buy(store: CloudStore) -> Iterator[tuple[int, str]]:
    """(tenant, order) of the orders that may need a label bought, for tenants with api carriers:
    every open order whose parcels are not all labelled by the OMS (read a page at a time), and
    every order past release with a voided parcel."""
    orders, carriers, parcels = schema.orders, schema.carriers, schema.parcels
    with store.read() as conn:
        tenants = sorted(
            {
                int(row.tenant_id)
                for row in conn.execute(select(carriers.c.tenant_id, carriers.c.tracking))
                if json.loads(row.tracking).get("kind") == "api"
            }
        )
    for tenant in tenants:
        last = 0
        while True:
            with store.read() as conn:
                page = conn.execute(
                    select(orders.c.id, orders.c.order_ref, orders.c.body)
                    .where(
                        orders.c.tenant_id == tenant,
                        orders.c.id > last,
                        or_(*(orders.c.state == state for state in OPEN_STATES)),
                    )
                    .order_by(orders.c.id)
                    .limit(ROUND_ROWS)
                ).all()
            for row in page:
                expected = json.loads(row.body).get("parcels") or [{}]
                if not all(p.get("label") or p.get("tracking_number") for p in expected):
                    yield tenant, str(row.order_ref)
            if len(page) < ROUND_ROWS:
                break
            last = int(page[-1].id)
        with store.read() as conn:
            voided = (
                conn.execute(
                    select(orders.c.order_ref)
                    .join(
                        parcels,
                        (parcels.c.tenant_id == orders.c.tenant_id)
                        & (parcels.c.order_ref == orders.c.order_ref),
                    )
                    .where(
                        orders.c.tenant_id == tenant,
                        or_(*(orders.c.state == state for state in (*OPEN_STATES, *RELABEL_STATES))),
                        parcels.c.state == ParcelState.VOIDED.value,
                    )
                    .distinct()
                )
                .scalars()
                .all()
            )
        yield from ((tenant, str(ref)) for ref in voided)


def run_round(store: CloudStore, *, factory: AdapterFactory = default_adapter) -> dict[str, int]:
    """One round of the background task: buy, void, relabel; counts of what it did."""
    counts = {"bought": 0, "voided": 0, "relabelled": 0, "failed": 0}
    for tenant, ref in _orders_to_buy(store):
        for outcome in buy_order_labels(store, tenant, ref, factory=factory):
            if outcome["outcome"] in counts:
                counts[outcome["outcome"]] += 1
    mark_cancelled(store)
    for outcome in void_pending_labels(store, factory=factory):
        if outcome["outcome"] == "voided":
            counts["voided"] += 1
    for exception_id, tenant, ref, number, weight, _warehouse in relabels_needed(store):
        done = relabel(store, exception_id, tenant, ref, number, weight, factory=factory)
        if done["outcome"] in counts:
            counts[done["outcome"]] += 1
    # Labels the relabels replaced.
    for outcome in void_pending_labels(store, factory=factory):
        if outcome["outcome"] == "voided":
            counts["voided"] += 1
    return counts


async def run_labels_bought(
    store: CloudStore, stop: asyncio.Event, *, interval_s: float = INTERVAL_S
) -> None:
    """Run `run_round` every `interval_s` until `stop` is set (one per cloud process)."""
    await run_every(run_round, store, stop, interval_s=interval_s, what="the carrier label round")
