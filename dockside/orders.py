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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from stdnum import ean

from dockside.shipping.parcels import MAX_PARCELS, ExpectedParcel

__all__ = [
    "GTIN_LENGTHS",
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
# Every agent of the warehouse keeps the order with its labels: bound what one order may carry.
MAX_ORDER_LABEL_BASE64 = 8 * 1024 * 1024


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


# The lengths of GTIN-8, GTIN-12 (UPC-A), GTIN-13 (EAN) and GTIN-14: a line barcode of digits
# alone with one of these lengths is a GTIN, and its GS1 check digit must be right.
GTIN_LENGTHS = frozenset({8, 12, 13, 14})


class OrderLine(_Strict):
    """One SKU and how many of it go in the parcel.

    `barcode` is what the item's own barcode reads, for the item check at the packing station:
    a GTIN (8, 12, 13 or 14 digits, its GS1 check digit verified) or any other code the
    warehouse labels its items with (up to 64 printable ASCII characters: letters, digits and
    punctuation, no spaces). Digits alone of a GTIN's length are taken as a GTIN: a wrong check
    digit is an OMS typo that would refuse every right item at the station, so it is refused here.
    """

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    qty: Annotated[int, Field(ge=1, le=100_000)] = 1
    description: Text = ""
    barcode: Annotated[str, StringConstraints(max_length=64, pattern=r"^[\x21-\x7e]*$")] = ""
    # For customs declarations (CN23) of international parcels: the Harmonized System code (6 to
    # 10 digits), the country of origin and the value of one unit, in the order's currency.
    hs_code: Annotated[str, StringConstraints(pattern=r"^([0-9]{6,10})?$")] = ""
    origin_country: Annotated[str, StringConstraints(pattern=r"^([A-Z]{2})?$")] = ""
    unit_value: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None

    @field_validator("barcode")
    @classmethod
    def _gtin_check_digit(cls, value: str) -> str:
        if value.isdigit() and len(value) in GTIN_LENGTHS and not ean.is_valid(value):
            raise ValueError(
                f"is not a GTIN-{len(value)}: its GS1 check digit (the last digit) is wrong; copy the "
                "item's barcode again"
            )
        return value


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
    # For B2B cartons: the customer's purchase order number (GS1 AI 400) and the ship-to
    # location's GLN (AI 410), both printed on the GS1 carton label.
    po_number: Annotated[str, StringConstraints(max_length=30, pattern=r"^[\x21-\x7e]*$")] = ""
    ship_to_gln: Annotated[str, StringConstraints(pattern=r"^([0-9]{13})?$")] = ""
    # The parcels the OMS expects, with what it already knows of each; none means one parcel.
    parcels: Annotated[list[ExpectedParcel], Field(max_length=MAX_PARCELS)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_bounded(self) -> Order:
        total = sum(len(parcel.label.data_base64) for parcel in self.parcels if parcel.label is not None)
        if total > MAX_ORDER_LABEL_BASE64:
            raise ValueError(
                f"the order's carrier labels are {total * 3 // 4:,} bytes together: at most "
                f"{MAX_ORDER_LABEL_BASE64 * 3 // 4:,} per order; send large labels one parcel at a time "
                "with POST /api/v1/orders/{order_ref}/parcels/{n}/label"
            )
        return self

    @field_validator("ship_to_gln")
    @classmethod
    def _gln_check_digit(cls, value: str) -> str:
        if value and not ean.is_valid(value):
            raise ValueError("is not a GLN: its GS1 check digit (the 13th digit) is wrong; copy it again")
        return value


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
