"""Parcels: what an OMS says it expects an order to ship as, and what a labelled parcel reports.

An order ships as one or more parcels, numbered from 1. The OMS may send what it already knows
of each (`Order.parcels`): the expected weight, the box dimensions, a tracking number and the
carrier's own label (ZPL, PDF or PNG, base64). Each parcel gets documents (the shipping label, a
packing slip, a GS1 carton label, a customs declaration) as the ruleset decides; every document
is a print job of its own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "MAX_LABEL_BYTES",
    "MAX_PARCELS",
    "DocumentKind",
    "ExpectedParcel",
    "LabelDocument",
    "LabelFormat",
    "ParcelFacts",
    "TrackingKind",
]

# A carrier's 4x6 label is tens of kilobytes as ZPL or PDF and a few hundred as a PNG; anything
# past this is not a label (and every agent of the warehouse keeps the order it comes with).
MAX_LABEL_BYTES = 2 * 1024 * 1024
MAX_PARCELS = 99
_BASE64_CHARS = (MAX_LABEL_BYTES + 2) // 3 * 4

TrackingNumber = Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Z0-9]*$")]
Dimension = Annotated[int, Field(ge=1, le=5_000)]


class LabelFormat(StrEnum):
    """How a carrier label arrives from the OMS."""

    ZPL = "zpl"
    PDF = "pdf"
    PNG = "png"


class DocumentKind(StrEnum):
    """The documents a parcel may get, each its own print job."""

    SHIPPING_LABEL = "shipping_label"
    PACKING_SLIP = "packing_slip"
    CARTON_LABEL = "carton_label"
    CUSTOMS_DECLARATION = "customs_declaration"


class TrackingKind(StrEnum):
    """Where a carrier account's tracking numbers come from (DESIGN.md, carriers)."""

    OMS = "oms"  # the OMS sends the number and the carrier's label with the order
    RANGE = "range"  # carrier-issued ranges, leased to agents in blocks
    SSCC = "sscc"  # GS1 SSCC-18 from the tenant's company prefix
    API = "api"  # a carrier or shipping API buys the label


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class LabelDocument(_Strict):
    """A carrier's label as the OMS sends it: its format and its bytes in base64."""

    format: LabelFormat
    data_base64: Annotated[str, StringConstraints(min_length=1, max_length=_BASE64_CHARS)]

    @field_validator("data_base64")
    @classmethod
    def _decodes(cls, value: str) -> str:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "is not base64: send the label's bytes base64-encoded, without line breaks"
            ) from None
        if len(data) > MAX_LABEL_BYTES:
            raise ValueError(f"is {len(data):,} bytes: a carrier label may be at most {MAX_LABEL_BYTES:,}")
        return value

    def data(self) -> bytes:
        """The label's bytes."""
        return base64.b64decode(self.data_base64)


class ExpectedParcel(_Strict):
    """One parcel as the OMS expects it, with whatever it already knows of it."""

    expected_weight_g: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    dimensions_mm: tuple[Dimension, Dimension, Dimension] | None = None
    tracking_number: TrackingNumber = ""
    carrier: Annotated[str, StringConstraints(max_length=32)] = ""
    service: Annotated[str, StringConstraints(max_length=32)] = ""
    label: LabelDocument | None = None

    @field_validator("tracking_number", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper().replace(" ", "") if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class ParcelFacts:
    """What every job event of a parcel's document tells the cloud about the parcel."""

    number: int = 1
    document: DocumentKind = DocumentKind.SHIPPING_LABEL
    tracking_number: str = ""
    carrier: str = ""
    service: str = ""
    weight_g: int | None = None
    dimensions_mm: tuple[int, int, int] | None = None
    sscc: str = ""

    def to_json(self) -> dict[str, Any]:
        """The keys job events carry (beside the job's own)."""
        return {
            "parcel": self.number,
            "document": self.document.value,
            "tracking_number": self.tracking_number,
            "dimensions_mm": list(self.dimensions_mm) if self.dimensions_mm else None,
            "sscc": self.sscc,
        }
