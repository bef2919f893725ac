"""Order calls: bulk ingest, one order, its state changes, cancel, erasure, its timeline and the
carrier label of one of its parcels.

Order ingest reads its raw body itself, counting it as it arrives (`cloud.api.order_batch`), so
one bad order cannot fail the whole batch and a hostile one is refused before it is built. The
other handlers touch the database as plain functions, which FastAPI runs in its worker threads.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from cloud import metrics
from cloud.access.callers import ErasesPersonalData, IngestsOrders, ManagesOrders, ReadsOrders, Store
from cloud.access.principals import Principal
from cloud.api import order_batch
from cloud.api.order_batch import BatchScan, InvalidJson
from cloud.orders import ingest as orders
from cloud.orders import oms_labels, privacy, timeline
from cloud.orders import states as order_states
from cloud.records import audit
from cloud.shipping import carrier_voids, voids
from cloud.storage.gc_pause import paused_gc
from cloud.storage.store import CloudStore
from dockside.errors import InputError
from dockside.http_errors import describe_field_errors
from dockside.orders import Order, OrderState
from dockside.shipping.parcels import MAX_LABEL_BYTES, MAX_PARCELS, LabelDocument

__all__ = ["INGEST_MAX_BODY_BYTES", "LABEL_MAX_BODY_BYTES", "OrderBatch", "router"]

INGEST_MAX_BODY_BYTES = 32 * 1024 * 1024
# A carrier label of MAX_LABEL_BYTES in base64 (4/3 of it) with its JSON around it.
LABEL_MAX_BODY_BYTES = max(3 * 1024 * 1024, (MAX_LABEL_BYTES + 2) // 3 * 4 + 64 * 1024)

router = APIRouter(prefix="/api/v1")
OrderRef = Annotated[str, Path(min_length=1, max_length=64)]
ParcelNumber = Annotated[int, Path(ge=1, le=MAX_PARCELS)]
_Reason = Annotated[str, StringConstraints(max_length=500)]


class OrderBatch(BaseModel):
    """The ingest body: up to 10,000 orders (documentation; each order is validated on its own)."""

    model_config = ConfigDict(extra="forbid")

    orders: Annotated[list[Order], Field(max_length=orders.MAX_ORDERS_PER_CALL)]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[Any]


_BATCH_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderBatch"}}},
    }
}


@router.post("/orders", summary="Ingest orders in bulk", openapi_extra=_BATCH_DOC)
async def ingest_orders(request: Request, caller: IngestsOrders, store: Store) -> JSONResponse:
    """Store up to 10,000 orders, idempotent by order_ref; each bad order is reported on its own."""
    with order_batch.BUFFERS.holding() as share:
        raw = await _read_batch(request, share)
        async with order_batch.parsing():
            result = await run_in_threadpool(_ingest, store, caller, raw)
    return JSONResponse(result.to_dict())


async def _read_batch(request: Request, share: order_batch.BodyShare) -> bytearray:
    """The body, refused while it arrives once it holds too many orders or values (see order_batch)."""
    raw = bytearray()
    scan = BatchScan()
    async for chunk in request.stream():
        share.add(len(chunk))
        raw += chunk
        if scan.exact:
            # Event by event costs milliseconds per chunk: keep it off the event loop.
            await run_in_threadpool(scan.feed, chunk, raw)
        else:
            scan.feed(chunk, raw)
    if scan.exact:
        await run_in_threadpool(scan.finish)
    return raw


def _ingest(store: CloudStore, caller: Principal, raw: bytearray) -> orders.IngestResult:
    with paused_gc():
        return _parse_and_ingest(store, caller, raw)


def _parse_and_ingest(store: CloudStore, caller: Principal, raw: bytearray) -> orders.IngestResult:
    try:
        document = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise InvalidJson(f'the body is not valid JSON ({exc}): send {{"orders": [...]}}') from None
    try:
        envelope = _Envelope.model_validate(document)
    except ValidationError as exc:
        raise InputError(describe_field_errors(exc.errors(include_url=False, include_input=False))) from None
    if len(envelope.orders) > orders.MAX_ORDERS_PER_CALL:
        raise InputError(
            f"a call takes at most {orders.MAX_ORDERS_PER_CALL:,} orders (got {len(envelope.orders):,}): "
            "split the batch into several calls",
            code="too_many_orders",
        )
    with store.unit_of_work():
        result = orders.ingest_orders(
            store,
            caller.tenant_id,
            envelope.orders,
            warehouses=caller.warehouses,
            by=caller.token_name,
            actor=caller.actor,
        )
        audit.record_many(
            store,
            caller,
            "amend_order",
            "order",
            [(change.order_ref, change.warehouse, change.before, change.after) for change in result.amended],
        )
        if result.changed:
            summary = {
                "accepted": len(result.accepted),
                "errors": len(result.errors),
                "changed": result.changed,
            }
            audit.record(store, caller, "ingest_orders", "orders", "ingest", None, summary)
    metrics.ORDERS_INGESTED.labels("accepted").inc(len(result.accepted))
    metrics.ORDERS_INGESTED.labels("error").inc(len(result.errors))
    metrics.ORDERS_CHANGED.inc(result.changed)
    return result


@router.get("/orders/{order_ref}", summary="One order with its state and events")
def get_order(order_ref: OrderRef, caller: ReadsOrders, store: Store) -> Any:
    """The order as ingested plus `state`, `created_at`, `updated_at`, `events` in time order and
    `parcels` (each with number, state, tracking_number, carrier, service, weight_g, dimensions_mm
    and documents: what the OMS expected joined with what the edge labelled)."""
    return timeline.get_order(store, caller.tenant_id, order_ref, warehouses=caller.warehouses)


class StateChangeIn(BaseModel):
    """The state an order should move to, and why."""

    model_config = ConfigDict(extra="forbid")

    state: OrderState
    reason: _Reason = ""


class CancelIn(BaseModel):
    """Why an order is cancelled."""

    model_config = ConfigDict(extra="forbid")

    reason: _Reason = ""


def _change_state(
    caller: Principal, store: CloudStore, order_ref: str, state: OrderState, reason: str
) -> dict[str, Any]:
    """Move the order and log the move in one transaction."""
    with store.unit_of_work():
        moved = order_states.change_state(
            store,
            caller.tenant_id,
            order_ref,
            state,
            by=caller.token_name,
            reason=reason,
            warehouses=caller.warehouses,
        )
        if moved["changed"]:
            audit.record(
                store,
                caller,
                "change_order_state",
                "order",
                moved["order_ref"],
                {"state": moved["from"]},
                {"state": moved["to"]},
            )
    return moved


@router.post("/orders/{order_ref}/state", summary="Move an order to another state")
def change_order_state(order_ref: OrderRef, body: StateChangeIn, caller: ManagesOrders, store: Store) -> Any:
    """Move an order along its lifecycle; an illegal change is refused (409) naming the current state."""
    return _change_state(caller, store, order_ref, body.state, body.reason)


@router.post("/orders/{order_ref}/cancel", summary="Cancel an order")
def cancel_order(
    order_ref: OrderRef, caller: ManagesOrders, store: Store, body: CancelIn | None = None
) -> Any:
    """Cancel an order; its warehouse's agents hear of it and refuse to pack it."""
    return _change_state(
        caller, store, order_ref, OrderState.CANCELLED, body.reason if body is not None else ""
    )


@router.post("/orders/{order_ref}/erase-personal-data", summary="Erase an order's personal data")
def erase_personal_data(order_ref: OrderRef, caller: ErasesPersonalData, store: Store) -> Any:
    """Blank the ship-to's personal fields (country kept) in the cloud and at the warehouse's agents."""
    with store.unit_of_work():
        done = privacy.erase_order_personal_data(
            store, caller.tenant_id, order_ref, by=caller.token_name, warehouses=caller.warehouses
        )
        if done["erased"]:
            # The audit trail records the erasure, never the erased values.
            audit.record(
                store,
                caller,
                "erase_personal_data",
                "order",
                order_ref,
                {"personal_data": "present"},
                {"personal_data": "erased"},
            )
    return done


@router.get("/orders/{order_ref}/timeline", summary="Everything that happened to an order")
def order_timeline(order_ref: OrderRef, caller: ReadsOrders, store: Store) -> Any:
    """Cloud and edge events of one order in time order, with sources (agent, station, printer, user)."""
    return timeline.order_timeline(store, caller.tenant_id, order_ref, warehouses=caller.warehouses)


@router.post("/orders/{order_ref}/parcels/{number}/label", summary="A carrier label for one parcel")
def put_parcel_label(
    order_ref: OrderRef, number: ParcelNumber, body: LabelDocument, caller: IngestsOrders, store: Store
) -> Any:
    """Give parcel `number` (1 to 99) the carrier's label, `{"format": "zpl" | "pdf" | "png",
    "data_base64"}`; the warehouse's agents receive the order with it.

    Refused (409) once the order is labelled, shipped or cancelled, or when that parcel's label is
    printed already; (422) when it is not one printable label or the order's labels together would
    pass 6 MiB.
    """
    with store.unit_of_work():
        done = oms_labels.set_parcel_label(
            store,
            caller.tenant_id,
            order_ref,
            number,
            body,
            by=caller.token_name,
            warehouses=caller.warehouses,
        )
        audit.record(
            store,
            caller,
            "set_parcel_label",
            "order",
            order_ref,
            None,
            {"parcel": number, "format": done["format"], "bytes": done["bytes"]},
        )
    return done


class VoidIn(BaseModel):
    """Why a parcel's label is voided (kept on the timeline and in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$")]


@router.post("/orders/{order_ref}/parcels/{number}/void", summary="Void one parcel's label")
def void_parcel_label(
    order_ref: OrderRef, number: ParcelNumber, body: VoidIn, caller: ManagesOrders, store: Store
) -> Any:
    """Void parcel `number`'s label: its tracking number is never used again, a label bought from a
    carrier API is voided there, and the warehouse's agents relabel the parcel at its next pack
    (the order's sync body lists `voided_parcels`). 404 when the parcel has no label; 409 once it
    is manifested or shipped; a second void answers `changed: false`.
    """
    with store.unit_of_work():
        done = voids.void_parcel(
            store,
            caller.tenant_id,
            order_ref,
            number,
            body.reason,
            by=caller.token_name,
            warehouses=caller.warehouses,
        )
        if done["changed"]:
            audit.record(
                store,
                caller,
                "void_parcel",
                "order",
                order_ref,
                None,
                {"parcel": number, "tracking_number": done["tracking_number"], "reason": body.reason},
            )
    if done["carrier_void"]:
        # After the commit: the carrier's API is called outside any write transaction.
        done["carrier_voids"] = carrier_voids.void_pending_labels(store, caller.tenant_id, order_ref)
    return done
