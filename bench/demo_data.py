"""Sample warehouse, station and orders for the demo, the benchmarks and the end-to-end tests."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SHIP_FROM", "demo_orders", "station_body"]

SHIP_FROM: dict[str, str] = {
    "name": "Dockside Demo 3PL",
    "company": "Harbour Fulfilment Ltd",
    "street": "1 Quay Street",
    "city": "Newark",
    "region": "NJ",
    "postal_code": "07105",
    "country": "US",
    "phone": "+1 973 555 0100",
}

_FIRST = ["Ada", "Grace", "Alan", "Linus", "Mei", "Olu", "Sofia", "Hiro", "Priya", "Tomás", "Zoë", "Ivan"]
_LAST = ["Lovelace", "Hopper", "Turing", "Chen", "Okafor", "García", "Tanaka", "Sharma", "Novak", "Müller"]
_STREETS = ["Main St", "Harbor Ave", "Elm Rd", "Market St", "Pier Blvd", "Cedar Ln", "Ocean Dr"]
_CITIES = [
    ("Brooklyn", "NY", "11201"),
    ("Austin", "TX", "78701"),
    ("Portland", "OR", "97205"),
    ("Chicago", "IL", "60601"),
    ("Miami", "FL", "33101"),
    ("Denver", "CO", "80202"),
]
_SKUS = [
    ("MUG-BLUE", "Blue mug", 350),
    ("TEE-M-BLK", "T-shirt M black", 180),
    ("BOOK-PY", "Python book", 900),
    ("SOCK-3PK", "Socks 3-pack", 120),
    ("LAMP-DSK", "Desk lamp", 1400),
]
_SERVICE = ["standard", "standard", "express", "economy"]


def demo_orders(
    count: int, *, warehouse: str = "WH1", prefix: str = "DEMO", seed: int = 7
) -> list[dict[str, Any]]:
    """`count` plausible orders DEMO-0001.. for `warehouse`, the same every run."""
    rng = random.Random(seed)
    orders = []
    for n in range(1, count + 1):
        city, region, postal = rng.choice(_CITIES)
        lines = []
        weight = 150
        for sku, description, grams in rng.sample(_SKUS, rng.randint(1, 3)):
            qty = rng.randint(1, 3)
            lines.append({"sku": sku, "qty": qty, "description": description})
            weight += grams * qty
        orders.append(
            {
                "order_ref": f"{prefix}-{n:04d}",
                "warehouse": warehouse,
                "service_level": rng.choice(_SERVICE),
                "ship_to": {
                    "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                    "company": "",
                    "street": f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
                    "city": city,
                    "region": region,
                    "postal_code": postal,
                    "country": "US",
                    "phone": f"+1 555 01{rng.randint(10, 99)}",
                },
                "lines": lines,
                "expected_weight_g": weight,
                "value": {"amount": f"{rng.randint(5, 200)}.{rng.randint(0, 99):02d}", "currency": "USD"},
            }
        )
    return orders


def station_body(
    code: str, *, printer_id: str, printer_port: int, scale_port: str, host: str = "127.0.0.1"
) -> dict[str, Any]:
    """A station with one ZPL label printer and an MT-SICS scale."""
    return {
        "code": code,
        "name": f"Packing station {code}",
        "printers": [
            {
                "id": printer_id,
                "role": "label",
                "language": "zpl",
                "host": host,
                "port": printer_port,
                "model": "ZD421",
            }
        ],
        "scale": {"protocol": "mt-sics", "port": scale_port, "baudrate": 9600},
    }
