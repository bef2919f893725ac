"""Load a started stack with the demo warehouse: ship-from, station S1, shipped templates, orders."""

from __future__ import annotations

from typing import Any

from bench.demo_data import SHIP_FROM, demo_orders, station_body
from bench.stack import Stack
from dockside.labels.shipped import load_shipped_template, shipped_template_names

__all__ = ["ingest_orders", "provision", "publish_template", "shipped_template"]


def shipped_template(name: str) -> dict[str, Any]:
    """The body that creates a version of a template shipped in label_templates/<name>/."""
    return load_shipped_template(name).version_body()


def publish_template(stack: Stack, name: str, body: dict[str, Any] | None = None) -> int:
    """Create a version of template `name` and publish it; returns the version number."""
    version = stack.admin_call("POST", f"/api/v1/templates/{name}/versions", body or shipped_template(name))[
        "version"
    ]
    stack.admin_call("POST", f"/api/v1/templates/{name}/versions/{version}/publish", {})
    return int(version)


def ingest_orders(stack: Stack, orders: list[dict[str, Any]], *, chunk: int = 10_000) -> None:
    """Push orders through the bulk API; any refused order is an error here."""
    for start in range(0, len(orders), chunk):
        answer = stack.admin_call("POST", "/api/v1/orders", {"orders": orders[start : start + chunk]})
        if answer["errors"]:
            raise ValueError(f"orders refused: {answer['errors'][:3]}")


def provision(
    stack: Stack,
    *,
    order_count: int,
    scale_port: str | None = None,
    warehouse: str = "WH1",
    station: str = "S1",
    printer: str = "printer",
    order_prefix: str = "DEMO",
) -> list[dict[str, Any]]:
    """Warehouse, station wired to the started mocks, every shipped template, and orders."""
    stack.admin_call(
        "POST",
        "/api/v1/warehouses",
        {"code": warehouse, "name": f"Warehouse {warehouse}", "ship_from": SHIP_FROM},
    )
    printer_ready = stack.processes[printer].ready
    stack.admin_call(
        "POST",
        f"/api/v1/warehouses/{warehouse}/stations",
        station_body(
            station,
            printer_id=printer_ready.get("serial") or f"{station}-printer",
            printer_port=int(printer_ready["port"]),
            scale_port=scale_port or stack.processes["scale"].ready["pty"],
        ),
    )
    for name in shipped_template_names():
        publish_template(stack, name)
    orders = demo_orders(order_count, warehouse=warehouse, prefix=order_prefix)
    ingest_orders(stack, orders)
    return orders
