"""A parcel's documents at the agent: which print, from what, on which printer role.

Every parcel gets its shipping label first. When the OMS sent the carrier's own label for the
parcel (`Order.parcels[n - 1].label`), that label is what prints: ZPL as given (checked), a PDF or
PNG rendered at the printer's resolution into a ZPL graphic or an ESC/POS raster
(`dockside.labels.carrier_documents`); otherwise the ruleset's template renders it. After the
shipping label come the documents the ruleset lists for the parcel (`Decision.documents`: a
packing slip, a GS1 carton label, a customs declaration), each from its template on a printer of
its role, each a print job of its own.

Rendering a PDF costs tens of milliseconds, so it never runs on the event loop:
`Labeller.carrier_label_bytes` runs `carrier_label_printout` in a worker thread before the pack's
transaction, and a label the agent cannot print is an InputError naming the parcel, before any
job is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockside.errors import InputError
from dockside.labels.carrier_documents import label_to_escpos, label_to_zpl
from dockside.orders import SyncedOrder
from dockside.rules import Decision
from dockside.shipping.parcels import MAX_PARCELS, DocumentKind, ExpectedParcel, LabelDocument, LabelFormat
from edge_agent.devices.config import PrinterConfig

__all__ = [
    "DocumentPlan",
    "PrinterPaper",
    "carrier_label_printout",
    "expected_parcel",
    "paper_for",
    "parcel_documents",
    "plan_documents",
    "shipping_label_plan",
]


@dataclass(frozen=True, slots=True)
class DocumentPlan:
    """One document to print for a parcel: a template to render, or the carrier's own label.

    `template` is None exactly when `carrier_label` is set (the OMS sent the carrier's label for
    this parcel); `tracking_number` is the number the OMS sent for the parcel ("" when none).
    """

    kind: DocumentKind
    template: str | None
    printer_role: str
    carrier_label: LabelDocument | None = None
    tracking_number: str = ""


def _check_parcel(order: SyncedOrder, parcel: int) -> None:
    if isinstance(parcel, bool) or not isinstance(parcel, int) or not 1 <= parcel <= MAX_PARCELS:
        raise InputError(
            f"order {order.order.order_ref} has no parcel {parcel!r}: parcels are numbered 1 to "
            f"{MAX_PARCELS}",
            code="parcel_out_of_range",
        )


def expected_parcel(order: SyncedOrder, parcel: int) -> ExpectedParcel | None:
    """What the OMS said of parcel `parcel` (from 1), or None when it did not list that parcel."""
    _check_parcel(order, parcel)
    parcels = order.order.parcels
    return parcels[parcel - 1] if parcel <= len(parcels) else None


def shipping_label_plan(order: SyncedOrder, parcel: int, decision: Decision) -> DocumentPlan:
    """The parcel's shipping label: the carrier's label when the OMS sent one, else the template.

    Either way it prints on a printer of the decision's role.
    """
    expected = expected_parcel(order, parcel)
    tracking = expected.tracking_number if expected is not None else ""
    if expected is not None and expected.label is not None:
        return DocumentPlan(
            DocumentKind.SHIPPING_LABEL, None, decision.printer_role, expected.label, tracking
        )
    return DocumentPlan(DocumentKind.SHIPPING_LABEL, decision.template, decision.printer_role, None, tracking)


def plan_documents(order: SyncedOrder, parcel: int, decision: Decision) -> list[DocumentPlan]:
    """The parcel's documents after its shipping label, in the order the ruleset lists them."""
    expected = expected_parcel(order, parcel)
    tracking = expected.tracking_number if expected is not None else ""
    return [
        DocumentPlan(document.kind, document.template, document.printer_role, None, tracking)
        for document in decision.documents
    ]


def parcel_documents(order: SyncedOrder, parcel: int, decision: Decision) -> list[DocumentPlan]:
    """Every document of the parcel in print order: the shipping label, then the ruleset's."""
    return [shipping_label_plan(order, parcel, decision), *plan_documents(order, parcel, decision)]


@dataclass(frozen=True, slots=True)
class PrinterPaper:
    """What a carrier label is rendered for: the printer's language, resolution and label size."""

    language: str
    dpi: int
    width_dots: int
    height_dots: int | None  # None: continuous receipt paper (ESC/POS), as long as the label needs


# A station's printer entry does not say its resolution or media yet: 203 dpi, and a 4x6 inch
# label on a ZPL printer or 80 mm receipt paper (576 dots printable) on an ESC/POS one, the
# media the shipped templates are made for.
_PAPER = {
    "zpl": PrinterPaper("zpl", 203, 812, 1218),
    "escpos": PrinterPaper("escpos", 203, 576, None),
}


def paper_for(printer: PrinterConfig) -> PrinterPaper:
    """The paper a carrier label is rendered for on `printer`."""
    paper = _PAPER.get(printer.language)
    if paper is None:
        raise InputError(
            f"printer {printer.id} speaks {printer.language!r}, which cannot print a carrier label: "
            f"use a {' or '.join(_PAPER)} printer for the label role"
        )
    return paper


def carrier_label_printout(
    label: LabelDocument, paper: PrinterPaper, *, parcel: int, printer: str = ""
) -> bytes:
    """The bytes that print the carrier's `label` on `paper`; blocking (PDF rendering), so call it
    off the event loop. InputError names the parcel when the label cannot be printed."""
    what = f"parcel {parcel}'s carrier label ({label.format.value.upper()})"
    on = f"printer {printer}" if printer else f"a {paper.language} printer"
    if paper.language == "escpos" and label.format == LabelFormat.ZPL:
        raise InputError(
            f"{what} is ZPL, which {on} (ESC/POS) cannot print: ask the OMS for the label as PDF or "
            "PNG, or give the station a ZPL printer for the label's role",
            code="label_zpl_on_escpos",
        )
    try:
        if paper.language == "escpos":
            return label_to_escpos(label, dpi=paper.dpi, width_dots=paper.width_dots)
        assert paper.height_dots is not None
        return label_to_zpl(label, dpi=paper.dpi, width_dots=paper.width_dots, height_dots=paper.height_dots)
    except InputError as exc:
        raise InputError(
            f"{what} cannot be printed: {exc.message}; ask the OMS to send the label again",
            code=exc.code,
        ) from None
    except Exception as exc:  # the label is the OMS's bytes: whatever breaks on them is the label's fault
        raise InputError(
            f"{what} cannot be printed on {on}: rendering it failed ({type(exc).__name__}); "
            "ask the OMS to send the label again",
            code="carrier_label_unprintable",
        ) from exc
