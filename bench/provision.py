"""Load a started stack with the demo warehouse (ship-from, station S1, shipped templates, orders),
or with a fleet of enrolled agents for the sync benchmarks."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.demo_data import SHIP_FROM, demo_orders, station_body
from bench.stack import Stack
from cloud.fleet.agents import create_enrollment_tokens
from cloud.storage.store import CloudStore
from dockside.labels.shipped import load_shipped_template, shipped_template_names
from dockside.v1 import sync_pb2 as pb
from edge_agent.sync import GrpcTransport

__all__ = [
    "UPU_S10_FORMAT",
    "enroll_fleet",
    "ingest_orders",
    "mint_enrollment_tokens",
    "provision",
    "provision_range_carrier",
    "publish_template",
    "shipped_template",
]


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


# A UPU S10 number (two letters, 8-digit serial, mod 11 check digit, country): RR000000015GB.
UPU_S10_FORMAT: dict[str, Any] = {"scheme": "mod11", "prefix": "RR", "suffix": "GB", "digits": 8}


def provision_range_carrier(
    stack: Stack,
    *,
    code: str = "UPU",
    block_size: int = 30,
    first: int = 10_000_000,
    last: int = 10_999_999,
    number_format: dict[str, Any] | None = None,
    template: str = "shipping-4x6",
) -> None:
    """A carrier numbered from one carrier-issued range, and the 'default' ruleset deciding it.

    Agents are leased `block_size` serials at a time (those enrolled already at once, later ones
    when they enroll). The ruleset prints the shipping label alone (no other document), so each
    pack prints one label with one number. Call after `provision` published the templates.
    """
    tracking = {"kind": "range", "format": number_format or UPU_S10_FORMAT}
    stack.admin_call(
        "POST",
        "/api/v1/carriers",
        {
            "code": code,
            "name": f"Carrier {code}",
            "tracking": tracking,
            "low_water": 0,
            "block_size": block_size,
        },
    )
    stack.admin_call("POST", f"/api/v1/carriers/{code}/ranges", {"first": first, "last": last})
    ruleset = {"default": {"carrier": code, "service": "priority", "template": template, "documents": []}}
    version = stack.admin_call("POST", "/api/v1/rulesets/default/versions", ruleset)["version"]
    stack.admin_call("POST", f"/api/v1/rulesets/default/versions/{version}/publish", {})


def mint_enrollment_tokens(database_url: str, warehouse: str, count: int, *, ttl_s: int = 3_600) -> list[str]:
    """`count` one-time enrollment tokens for `warehouse` (default tenant), in one transaction.

    cloud.fleet.agents.create_enrollment_tokens, straight on the database: the admin API makes one
    token per call (with its audit line), which for thousands of agents takes minutes.
    """
    store = CloudStore.open(database_url, create=False, listen=False)
    try:
        return create_enrollment_tokens(store, store.tenant_id(), warehouse, count, ttl_s=ttl_s)
    finally:
        store.close()


async def enroll_fleet(target: str, tokens: list[str], *, in_flight: int = 64) -> list[pb.EnrollResponse]:
    """Trade every token for its own agent identity through the real Enroll RPC, `in_flight` at once."""
    transport = GrpcTransport(target)
    slots = asyncio.Semaphore(in_flight)

    async def enroll(index: int, token: str) -> pb.EnrollResponse:
        async with slots:
            request = pb.EnrollRequest(token=token, hostname=f"bench-{index}", agent_version="bench")
            return await transport.enroll(request)

    try:
        return list(await asyncio.gather(*(enroll(i, token) for i, token in enumerate(tokens))))
    finally:
        await transport.close()
