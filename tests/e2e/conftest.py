"""Fixtures that start a real Dockside stack: cloud, mock printer, mock scale and an agent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.provision import provision
from bench.stack import Stack, restartable_address, running_stack, wait_for

# A weight serves one parcel: a run that scans many orders puts parcels of these weights on in turn.
PARCELS_G = (1234, 1334)


def put_next_parcel(stack: Stack, n: int, scale: str = "scale") -> None:
    """Put a run's `n`-th parcel on the scale, 100 g apart from the one before, without waiting.

    The scan that follows waits (up to the agent's --scale-wait) for the reader to settle on it,
    as it does when a packer scans the moment the parcel is down. `scale` names the mock in the
    stack, for a run over several stations.
    """
    stack.control(scale, "POST", "/weight", {"grams": PARCELS_G[n % 2], "stable": True})


class Station:
    """A packer's view of station S1: the agent's local API plus the mocks around it.

    `agent` names the agent in the stack, for a stack that runs more than one.
    """

    def __init__(self, stack: Stack, agent: str = "agent") -> None:
        self.stack = stack
        self.agent = agent
        self.http = stack.agent_client(agent)

    def pack(self, order_ref: str, request_id: str, station: str = "S1") -> httpx.Response:
        return self.http.post(
            "/api/v1/pack", json={"order_ref": order_ref, "station": station, "request_id": request_id}
        )

    def wait_synced(self, order_ref: str, timeout: float = 30) -> None:
        """Wait until the agent's cache has `order_ref`."""
        wait_for(
            lambda: self.http.get(f"/api/v1/orders/{order_ref}").status_code == 200,
            timeout=timeout,
            what=f"order {order_ref} to reach the agent",
        )

    def labels(self) -> list[dict[str, Any]]:
        return list(self.stack.control("printer", "GET", "/labels"))

    def set_weight(self, grams: int, stable: bool = True) -> None:
        """Put a parcel on the scale and wait until the station shows its weight, as a packer does."""
        self.stack.control("scale", "POST", "/weight", {"grams": grams, "stable": stable})

        def shown() -> bool:
            scale = self.status()["stations"][0]["scale"]
            return bool(scale["weight_g"] == grams and scale["stable"] == stable)

        wait_for(shown, timeout=10, what=f"the station to show {grams} g")

    def put_parcel(self, grams: int | None = None) -> int:
        """Put the next parcel on the scale and wait until the station can weigh it; its weight.

        A weight serves one parcel: after a pack, the next scan needs a new parcel, one the scale
        read empty before or that weighs more than 10 g apart. Without `grams`, it is the one of
        PARCELS_G that is far from the weight the last pack used.
        """
        used_before = (self.status()["stations"][0]["scale"]["last_used"] or {}).get("grams")
        if grams is None:
            grams = PARCELS_G[1] if used_before and abs(used_before - PARCELS_G[0]) <= 10 else PARCELS_G[0]
        self.stack.control("scale", "POST", "/weight", {"grams": grams, "stable": True})

        def ready() -> bool:
            # Ready, or already taken: a page waiting in WEIGHING packs the moment it is ready,
            # maybe between two of these reads (a pack that used this weight, when the last one
            # before used another, used this parcel).
            scale = self.status()["stations"][0]["scale"]
            used = (scale["last_used"] or {}).get("grams")
            taken = used == grams != used_before
            return scale["weight_g"] == grams and bool(scale["parcel_ready"] or taken)

        wait_for(ready, timeout=10, what=f"a new {grams} g parcel at the station")
        return grams

    def status(self) -> dict[str, Any]:
        return dict(self.http.get("/api/v1/status").json())

    def restart_agent(self) -> None:
        self.http.close()
        self.stack.processes[self.agent].stop()
        self.stack.start_agent(self.agent)
        self.http = self.stack.agent_client(self.agent)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as started:
        yield started


@contextmanager
def provisioned_station(stack: Stack) -> Iterator[Station]:
    """Start a provisioned warehouse WH1 on `stack`: station S1, 60 orders, the agent synced, 1234 g."""
    stack.start_cloud(grpc=restartable_address())  # some tests restart it on the same address
    stack.start_printer(serial="ZD421-E2E")
    stack.start_scale()
    stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
    provision(stack, order_count=60, order_prefix="E2E")
    stack.enroll_agent("WH1")
    stack.start_agent()
    s = Station(stack)
    try:
        s.wait_synced("E2E-0060")
        yield s
    finally:
        s.http.close()


@pytest.fixture
def station(stack: Stack) -> Iterator[Station]:
    """A provisioned warehouse WH1 with station S1 and 60 orders, the agent synced and weighing 1234 g."""
    with provisioned_station(stack) as s:
        yield s


@pytest.fixture(scope="module")
def shared_station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    """One `station` stack for a whole module, for tests that each use their own orders.

    Starting a stack costs seconds; a module whose tests leave the devices as they found them
    (each test undoes the faults it sets) shares one.
    """
    with running_stack(tmp_path_factory.mktemp("stack")) as stack, provisioned_station(stack) as s:
        yield s
