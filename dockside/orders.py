"""The order: what an OMS sends, what the cloud stores and what an agent packs.

The shape is the contract of DESIGN.md. Validation is strict about structure and bounded in size
(an OMS bug must not fill a station's disk) but accepts any Unicode in free text: names and
streets come in every script, and label rendering is what makes them safe for a printer.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "Address",
    "Money",
    "Order",
    "OrderLine",
    "OrderState",
    "SyncedOrder",
]

# A reference that is safe in a URL path, a file name and a barcode.
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Code = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Text = Annotated[str, StringConstraints(max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Address(_Strict):
    """Where a parcel goes (or comes from). Personal data: erased on request."""

    name: Text
    company: Text = ""
    street: Text
    street2: Text = ""
    city: Text
    region: Text = ""
    postal_code: Annotated[str, StringConstraints(max_length=20)] = ""
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    phone: Annotated[str, StringConstraints(max_length=40)] = ""


class OrderLine(_Strict):
    """One SKU and how many of it go in the parcel."""

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    qty: Annotated[int, Field(ge=1, le=100_000)] = 1
    description: Text = ""


class Money(_Strict):
    """An amount in a currency; the amount is a decimal string so no cent is lost to floats."""

    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Order(_Strict):
    """An order as an OMS pushes it: `POST /api/v1/orders` takes a list of these."""

    order_ref: Ref
    warehouse: Code
    service_level: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "standard"
    ship_to: Address
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=1000)]
    expected_weight_g: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    value: Money | None = None


class OrderState(StrEnum):
    """Where an order is in its life; the cloud refuses transitions the lifecycle does not allow."""

    CREATED = "created"
    RELEASED = "released"
    PACKED = "packed"
    LABELLED = "labelled"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    EXCEPTION = "exception"


class SyncedOrder(BaseModel):
    """An order as the cloud syncs it to its warehouse's agents: the `Order` plus the cloud's word on it.

    The sync body is flat: the order's fields beside what the cloud adds, its `state`, once
    shipped its `shipped_at`, in a wave the `wave` it is released in. The order is as strict as
    `Order` (the cloud validated it at ingest, so a refusal here is a cloud bug worth seeing).
    What the cloud adds is taken leniently, since the cloud is the authority on it and a newer
    cloud may add more: a state that is not a text is kept as "" (the agent prints for no state it
    does not know), a `shipped_at` that is not a text as None (the order is then never purged
    early), and any other field is kept as sent in `cloud_fields`.
    """

    model_config = ConfigDict(frozen=True)

    order: Order
    state: str = ""
    shipped_at: str | None = None
    cloud_fields: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_sync_body(cls, body: Mapping[str, Any], *, state: str | None = None) -> SyncedOrder:
        """Parse a flat sync body; `state` overrides the body's (the cache keeps it in its own column)."""
        order = {key: value for key, value in body.items() if key in Order.model_fields}
        added = {key: value for key, value in body.items() if key not in Order.model_fields}
        told = added.pop("state", "")
        shipped_at = added.pop("shipped_at", None)
        return cls(
            order=Order.model_validate(order),
            state=state if state is not None else told if isinstance(told, str) else "",
            shipped_at=shipped_at if isinstance(shipped_at, str) else None,
            cloud_fields=added,
        )

    @cached_property
    def order_json(self) -> dict[str, Any]:
        """The order's JSON shape, what rules and templates read; made once per parsed order."""
        return self.order.model_dump(mode="json")

    def sync_body(self) -> dict[str, Any]:
        """The flat body again, as the cloud sent it (what the agent's local API shows)."""
        body = {**self.order_json, "state": self.state}
        if self.shipped_at is not None:
            body["shipped_at"] = self.shipped_at
        return {**body, **self.cloud_fields}
