"""The printable manifest a carrier's driver signs: who, what, how heavy, and a barcode to scan.

An A4 page (more when the parcels do not fit): the warehouse, carrier and date, a Code 128
barcode of the manifest id (drawn as rectangles from dockside.labels.barcode_modules, with the
10-module quiet zones the symbology asks for), a table of the parcels with their order
reference, parcel number, tracking number, service and weight, the totals, and a line for the
driver's name, signature and time of pickup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockside.labels.barcode_modules import code128_b_modules

if TYPE_CHECKING:
    from fpdf import FPDF

__all__ = ["manifest_pdf"]

_MODULE_MM = 0.5
_BAR_HEIGHT_MM = 16.0
_QUIET_MODULES = 10
_COLUMNS = (("Order", 50.0), ("Parcel", 16.0), ("Tracking number", 62.0), ("Service", 36.0), ("Weight", 26.0))


def _text(value: Any) -> str:
    # The core PDF fonts hold Latin-1 only; anything else prints as '?' rather than failing the page.
    return str(value).encode("latin-1", "replace").decode("latin-1")


def _weight(grams: int | None) -> str:
    return "-" if grams is None else f"{grams / 1000:.3f} kg"


def _barcode(pdf: FPDF, text: str, x: float, y: float) -> float:
    """Draw `text` as Code 128 at (x, y) after a quiet zone; returns the symbol's width with both zones."""
    modules = code128_b_modules(text)
    start = x + _QUIET_MODULES * _MODULE_MM
    pdf.set_fill_color(0, 0, 0)
    run = 0
    for index, module in enumerate(modules + "0"):
        if module == "1":
            run += 1
            continue
        if run:
            left = start + (index - run) * _MODULE_MM
            pdf.rect(left, y, run * _MODULE_MM, _BAR_HEIGHT_MM, style="F")
            run = 0
    return (len(modules) + 2 * _QUIET_MODULES) * _MODULE_MM


def manifest_pdf(manifest: dict[str, Any]) -> bytes:
    """The manifest (cloud.shipping.manifests.get_manifest's body) as PDF bytes."""
    # fpdf2 (with fontTools) adds ~40 MB to a process: the cloud loads it when a driver's PDF
    # is first asked for, not at start (the hostile-ingest tests bound the cloud's memory).
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(_text(f"Manifest {manifest['id']}"))
    pdf.set_creator("Dockside")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=18)
    pdf.cell(0, 10, _text(f"Carrier manifest {manifest['id']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    warehouse = f"{manifest['warehouse']} - {manifest.get('warehouse_name', '')}".rstrip(" -")
    for label, value in (
        ("Warehouse", warehouse),
        ("Carrier", manifest["carrier"]),
        ("Date", manifest["created_at"][:10]),
        ("Closed at", manifest["created_at"][:19].replace("T", " ") + " UTC"),
    ):
        pdf.cell(30, 6, _text(f"{label}:"))
        pdf.cell(0, 6, _text(value), new_x="LMARGIN", new_y="NEXT")
    top = pdf.get_y() + 3
    width = _barcode(pdf, str(manifest["id"]), pdf.l_margin, top)
    pdf.set_xy(pdf.l_margin, top + _BAR_HEIGHT_MM + 1)
    pdf.set_font("Helvetica", size=9)
    pdf.cell(width, 5, _text(str(manifest["id"])), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _table(pdf, manifest["parcels"])
    pdf.ln(4)
    pdf.set_font("Helvetica", style="B", size=11)
    pdf.cell(
        0,
        7,
        _text(f"Total: {manifest['parcel_count']} parcels, {_weight(manifest['total_weight_g'])}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if pdf.get_y() > pdf.h - 60:
        pdf.add_page()
    pdf.ln(16)
    pdf.set_font("Helvetica", size=10)
    for label in ("Driver name", "Signature", "Date and time of pickup"):
        y = pdf.get_y()
        pdf.cell(50, 6, _text(label))
        pdf.line(pdf.l_margin + 50, y + 5, pdf.l_margin + 150, y + 5)
        pdf.ln(12)
    return bytes(pdf.output())


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """`text`, cut short with '...' when it is wider than its cell."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _header(pdf: FPDF) -> None:
    pdf.set_font("Helvetica", style="B", size=10)
    pdf.set_fill_color(225, 225, 225)
    for title, width in _COLUMNS:
        pdf.cell(width, 7, title, border=1, fill=True)
    pdf.ln()
    pdf.set_font("Helvetica", size=9)


def _table(pdf: FPDF, parcels: list[dict[str, Any]]) -> None:
    _header(pdf)
    for parcel in parcels:
        if pdf.get_y() + 6 > pdf.h - pdf.b_margin:
            pdf.add_page()
            _header(pdf)
        cells = (
            parcel["order_ref"],
            str(parcel["number"]),
            parcel["tracking_number"] or "-",
            parcel["service"] or "-",
            _weight(parcel["weight_g"]),
        )
        for (_title, width), value in zip(_COLUMNS, cells, strict=True):
            pdf.cell(width, 6, _fit(pdf, _text(value), width - 2), border=1)
        pdf.ln()
