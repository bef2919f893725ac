"""The adapter interface for carriers and shipping APIs that sell labels: buy one, void one.

A carrier account of tracking kind `api` names an adapter (`shipstation`, cloud/shipping/
shipstation.py) and its API key. When an order is released to its warehouse the cloud buys each
parcel's label with the expected weight (`CarrierApi.create_label`), and the label and tracking
number reach the agent with the order like an OMS-sent label; when the order is cancelled, or the
packed weight falls outside the ruleset's tolerance and the parcel is relabelled, the old label
is voided (`void_label`) so the carrier refunds it and its number is never used again.

Every failure is a `CarrierApiError`; code that must decide asks its type and two attributes:

    CarrierApiError         something the adapter could not make sense of
    ├── CarrierApiRefused   the API answered no (4xx: a bad address, service or API key):
    │                       sending the same request again fails again; a person fixes the data
    └── CarrierApiUnavailable  no answer in time, a connection refused, 5xx or 429: try later

    retry_may_help   the same call later, unchanged, may succeed
    may_have_bought  (create_label) the request may have reached the API and a label may have
                     been bought and charged although no answer says so: before buying again,
                     look the label up in the carrier's account (or void it), never just retry
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dockside.errors import DocksideError
from dockside.orders import Address, Money
from dockside.shipping.parcels import LabelDocument, LabelFormat

__all__ = [
    "CarrierApi",
    "CarrierApiError",
    "CarrierApiRefused",
    "CarrierApiUnavailable",
    "LabelRequest",
    "PurchasedLabel",
]


class CarrierApiError(DocksideError):
    """A carrier API call failed; `retry_may_help` and `may_have_bought` say what that means."""

    code = "carrier_api_error"
    http_status = 502
    retry_may_help = False

    def __init__(self, message: str, *, code: str | None = None, may_have_bought: bool = False) -> None:
        super().__init__(message, code=code)
        self.may_have_bought = may_have_bought


class CarrierApiRefused(CarrierApiError):
    """The API refused the request (4xx); unchanged, it is refused again."""

    code = "carrier_api_refused"


class CarrierApiUnavailable(CarrierApiError):
    """The API did not answer usefully in time (timeout, refused connection, 5xx, 429)."""

    code = "carrier_api_unavailable"
    retry_may_help = True


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One parcel's label to buy: who it goes to and from, what it weighs, which service."""

    order_ref: str
    parcel: int
    ship_to: Address
    ship_from: Address  # the warehouse's address
    weight_g: int  # the expected weight at release; the packed weight when relabelling
    service: str  # the API's service code, e.g. "ups_ground"
    dimensions_mm: tuple[int, int, int] | None = None
    carrier_account: str = ""  # the API's id of the carrier account ("" lets the API choose)
    label_format: LabelFormat = LabelFormat.ZPL


@dataclass(frozen=True, slots=True)
class PurchasedLabel:
    """A label the carrier sold: its id at the API (to void it), its number and its bytes."""

    label_id: str
    tracking_number: str
    label: LabelDocument
    carrier: str
    service: str
    cost: Money | None = None


class CarrierApi(Protocol):
    """What an adapter for a carrier or shipping API does."""

    name: str

    def create_label(self, request: LabelRequest) -> PurchasedLabel:
        """Buy the label for one parcel; CarrierApiError if none was bought (see may_have_bought)."""
        ...

    def void_label(self, label_id: str) -> bool:
        """Void a bought label: True if the API approved it, False if it declined (too late,
        already used or voided); CarrierApiError if it could not be asked."""
        ...
