"""The demo's shipping set-up: carrier accounts, number ranges, a ruleset that uses them, a packing
slip printer, and the orders that show what a real shipment needs.

On top of `provision` (warehouse WH1, station S1, templates, orders DEMO-0001..), this adds:

- three carrier accounts: `DEMOPOST` numbers parcels from a carrier-issued range (UPU S10 format,
  mod 11 check digit, `RR........US`), `B2BFREIGHT` numbers cartons with GS1 SSCC-18s from GS1's
  example company prefix, and `PARCELAPI` is a carrier whose labels the OMS buys and sends;
- a mock ESC/POS receipt printer with the role `slip` at station S1, for packing slips;
- ruleset `default`: parcels go with DEMOPOST on `shipping-4x6`; B2B orders (service level
  `b2b`) get GS1 carton labels numbered by B2BFREIGHT and a packing slip on the slip printer;
  orders whose label the OMS sends (service level `oms-label`) go with PARCELAPI;
- four orders: DEMO-B2C-2 (two cartons), DEMO-B2B-1 (two SSCC cartons with a PO number and
  the buyer's GLN), DEMO-PDF-1 (the carrier's label arrives from the OMS as a PDF).
"""

from __future__ import annotations

import base64
from typing import Any

from fpdf import FPDF

from bench.demo_data import station_body
from bench.provision import ingest_orders
from bench.stack import Stack
from dockside.labels.barcode_modules import zebra_code128

__all__ = ["DEMO_SHIPPING_ORDERS", "carrier_label_pdf", "provision_shipping"]

# GS1's own example company prefix (GS1 General Specifications), never a real company's.
GS1_EXAMPLE_PREFIX = "0614141"
PDF_TRACKING = "1Z999AA10123456784"  # UPS's published example tracking number
DEMO_SHIPPING_ORDERS = ("DEMO-B2C-2", "DEMO-B2B-1", "DEMO-PDF-1")

_SHIP_TO = {
    "name": "Ana Souza",
    "company": "",
    "street": "18 Harbor Way",
    "city": "Portland",
    "region": "OR",
    "postal_code": "97205",
    "country": "US",
    "phone": "+1 503 555 0199",
}


def carrier_label_pdf(tracking: str) -> bytes:
    """A 4x6 carrier label as a shipping API would send it: text and a Code 128 of `tracking`."""
    pdf = FPDF(unit="in", format=(4, 6))
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("helvetica", "B", size=22)
    pdf.text(0.3, 0.6, "PARCELAPI GROUND")
    pdf.set_font("helvetica", size=12)
    for row, line in enumerate(("SHIP TO: ANA SOUZA", "18 HARBOR WAY", "PORTLAND OR 97205 US")):
        pdf.text(0.3, 1.05 + row * 0.22, line)
    pdf.rect(0.2, 1.9, 3.6, 0.03, style="F")
    modules = zebra_code128(tracking).modules
    module_in = 0.0148  # three dots at 203 dpi
    left = (4 - len(modules) * module_in) / 2
    for index, module in enumerate(modules):
        if module == "1":
            pdf.rect(left + index * module_in, 2.3, module_in, 1.1, style="F")
    pdf.set_font("helvetica", "B", size=12)
    pdf.text(0.8, 3.75, f"TRACKING #: {tracking}")
    return bytes(pdf.output())


def _orders() -> list[dict[str, Any]]:
    def line(sku: str, qty: int, description: str) -> dict[str, Any]:
        return {"sku": sku, "qty": qty, "description": description}

    pdf = base64.b64encode(carrier_label_pdf(PDF_TRACKING)).decode("ascii")
    return [
        {
            "order_ref": "DEMO-B2C-2",
            "warehouse": "WH1",
            "service_level": "standard",
            "ship_to": _SHIP_TO,
            "lines": [line("LAMP-OAK", 1, "Oak floor lamp"), line("SHADE-LINEN", 1, "Linen shade")],
            "expected_weight_g": 6200,
            "parcels": [
                {"expected_weight_g": 4800, "dimensions_mm": [900, 250, 250]},
                {"expected_weight_g": 1400, "dimensions_mm": [400, 400, 300]},
            ],
        },
        {
            "order_ref": "DEMO-B2B-1",
            "warehouse": "WH1",
            "service_level": "b2b",
            "ship_to": {**_SHIP_TO, "name": "Receiving dock 4", "company": "Harbor Lights Books"},
            "lines": [line("BOOK-PY", 40, "Python book, carton of 20"), line("MUG-BLUE", 24, "Blue mug")],
            "po_number": "PO-2026-1187",
            "ship_to_gln": "0614141000012",
            "parcels": [
                {"expected_weight_g": 12000, "dimensions_mm": [600, 400, 400]},
                {"expected_weight_g": 9000, "dimensions_mm": [600, 400, 300]},
            ],
        },
        {
            "order_ref": "DEMO-PDF-1",
            "warehouse": "WH1",
            "service_level": "oms-label",
            "ship_to": _SHIP_TO,
            "lines": [line("SOCK-3PK", 2, "Socks 3-pack")],
            "expected_weight_g": 450,
            "parcels": [
                {
                    "expected_weight_g": 450,
                    "tracking_number": PDF_TRACKING,
                    "carrier": "PARCELAPI",
                    "service": "ground",
                    "label": {"format": "pdf", "data_base64": pdf},
                }
            ],
        },
    ]


def _ruleset() -> dict[str, Any]:
    return {
        "default": {
            "carrier": "DEMOPOST",
            "service": "standard",
            "template": "shipping-4x6",
            "printer_role": "label",
        },
        "rules": [
            {
                "name": "B2B cartons: GS1 carton label and a packing slip",
                "when": "service_level == 'b2b'",
                "then": {
                    "carrier": "B2BFREIGHT",
                    "service": "pallet-freight",
                    "template": "gs1-carton-4x6",
                    "documents": [
                        {"kind": "packing_slip", "template": "packing-slip", "printer_role": "slip"}
                    ],
                },
            },
            {
                "name": "labels bought by the OMS",
                "when": "service_level == 'oms-label'",
                "then": {"carrier": "PARCELAPI", "service": "ground"},
            },
        ],
    }


def provision_shipping(
    stack: Stack, *, scale_port: str, slip_printer: str = "slip-printer", station: str = "S1"
) -> None:
    """Carriers, ranges, the slip printer at `station`, the ruleset and the shipping orders.

    `slip_printer` names a started ESC/POS mock printer in the stack; the station keeps its label
    printer (the stack's `printer`) and its scale on `scale_port`, as `provision` set them.
    """
    label = stack.processes["printer"].ready
    slip = stack.processes[slip_printer].ready
    body = station_body(
        station,
        printer_id=label.get("serial") or f"{station}-printer",
        printer_port=int(label["port"]),
        scale_port=scale_port,
    )
    body["printers"].append(
        {
            "id": slip.get("serial") or f"{station}-slip",
            "role": "slip",
            "language": "escpos",
            "host": "127.0.0.1",
            "port": int(slip["port"]),
            "model": "TM-T88",
        }
    )
    stack.admin_call("POST", "/api/v1/warehouses/WH1/stations", body)
    stack.admin_call(
        "POST",
        "/api/v1/carriers",
        {
            "code": "DEMOPOST",
            "name": "Demo Post (UPU S10 numbers)",
            "tracking": {
                "kind": "range",
                "format": {"scheme": "mod11", "prefix": "RR", "suffix": "US", "digits": 8},
            },
        },
    )
    stack.admin_call("POST", "/api/v1/carriers/DEMOPOST/ranges", {"first": 10_000_000, "last": 10_099_999})
    stack.admin_call(
        "POST",
        "/api/v1/carriers",
        {
            "code": "B2BFREIGHT",
            "name": "B2B freight (GS1 SSCC-18 cartons)",
            "tracking": {"kind": "sscc", "company_prefix": GS1_EXAMPLE_PREFIX, "extension": 1},
        },
    )
    stack.admin_call(
        "POST",
        "/api/v1/carriers",
        {"code": "PARCELAPI", "name": "Parcel API (labels from the OMS)", "tracking": {"kind": "oms"}},
    )
    version = stack.admin_call("POST", "/api/v1/rulesets/default/versions", _ruleset())["version"]
    stack.admin_call("POST", f"/api/v1/rulesets/default/versions/{version}/publish", {})
    ingest_orders(stack, _orders())
