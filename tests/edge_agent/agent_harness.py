"""An agent serving its real HTTP API from a thread, synced from an in-memory cloud.

The agent runs exactly as `dockside-agent run` runs it (same `run_agent`, same uvicorn, same
event loop discipline), on an ephemeral port; only the transport is the in-memory cloud, so a
test can publish orders and stations and read the events the agent delivered. Its `http`
client calls the local API as a program on the same PC does: with the local token from the
agent's data dir (`Authorization: Bearer`).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

from dockside.labels import load_shipped_template
from edge_agent.agent import Agent, AgentSettings
from edge_agent.http.local_access import AccessPolicy
from edge_agent.http.local_credentials import read_local_token
from edge_agent.http.server import run_agent
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from edge_agent.sync.identity import Identity, load_identity, save_identity
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.waiting import wait_until

SHIP_FROM = {
    "name": "Harbour Fulfilment",
    "street": "1 Quay Street",
    "city": "Newark",
    "region": "NJ",
    "postal_code": "07105",
    "country": "US",
}
FAST = AgentSettings(
    scale_wait_s=0.5,
    report_interval_s=3600,
    printer_check_interval_s=3600,
    reconnect_base_s=0.01,
    reconnect_cap_s=0.1,
)


def order_body(ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "order_ref": ref,
        "warehouse": "WH1",
        "service_level": "express",
        "ship_to": {
            "name": "Grace Hopper",
            "street": "12 Navy Yard Road",
            "city": "Arlington",
            "region": "VA",
            "postal_code": "22202",
            "country": "US",
        },
        "lines": [{"sku": "MUG-BLUE", "qty": 1}],
        "expected_weight_g": 1200,
        **extra,
    }


def station_body(
    code: str, printer: MockPrinter, scale_port: str, *, printer_port: int | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"Packing station {code}",
        "printers": [
            {
                "id": f"{code}-label",
                "role": "label",
                "language": "zpl",
                "host": "127.0.0.1",
                "port": printer.port if printer_port is None else printer_port,
                "model": "ZD421",
            }
        ],
        "scale": {"protocol": "mt-sics", "port": scale_port, "baudrate": 9600},
    }


def publish_warehouse(cloud: MemoryTransport) -> None:
    """The warehouse and the shipped 4x6 template, as the cloud would sync them."""
    cloud.publish("warehouse", "WH1", {"code": "WH1", "name": "Warehouse 1", "ship_from": SHIP_FROM})
    body = load_shipped_template("shipping-4x6").version_body()
    cloud.publish(
        "template_version", "shipping-4x6@1", {**body, "name": "shipping-4x6", "version": 1, "active": True}
    )


def error_of(response: httpx.Response) -> dict[str, str]:
    """The contract's error body of `response`, checked for shape and for leaked traces."""
    body = response.json()
    assert set(body) == {"error"}, body
    # `params`: the values the message names, for the station page's catalogs (when there are any).
    assert set(body["error"]) in ({"code", "message"}, {"code", "message", "params"}), body
    assert isinstance(body["error"].get("params", {}), dict), body
    assert body["error"]["code"]
    assert body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    return dict(body["error"])


def scale_settled(agent: RunningAgent) -> bool:
    """The agent's first station reads a stable weight."""
    scale = agent.status()["stations"][0]["scale"]
    return bool(scale and scale["state"] == "ok" and scale["stable"])


def put_parcel(agent: RunningAgent, scale: MockScale, grams: int, station: int = 0) -> None:
    """A new parcel of `grams` on the mock scale, once the agent sees it ready (one weight, one parcel)."""
    scale.set_weight(grams, stable=True)

    def ready() -> bool:
        seen = agent.status()["stations"][station]["scale"]
        return bool(seen and seen["weight_g"] == grams and seen["parcel_ready"])

    wait_until(ready, what=f"a {grams} g parcel ready on the scale")


class RunningAgent:
    """`run_agent` in a background thread; `stop()` shuts it down the way SIGTERM would."""

    def __init__(
        self,
        data_dir: Path,
        cloud: MemoryTransport,
        settings: AgentSettings = FAST,
        *,
        http: str = "127.0.0.1:0",
        access: AccessPolicy | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.cloud = cloud
        self.settings = settings
        self.bind = http
        self.access = access
        self.token = ""
        self.address = ""
        self.agent: Agent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.http: httpx.Client | None = None

    def start(self) -> RunningAgent:
        ready: Future[str] = Future()

        async def main() -> None:
            store = Store.open(self.data_dir)
            try:
                identity = load_identity(store) or save_identity(
                    store,
                    agent_id="agent-test",
                    credential="cred",
                    warehouse="WH1",
                    tenant="t",
                    cloud="memory",
                )
                assert isinstance(identity, Identity)
                self.agent = Agent(store, identity, self.cloud, self.settings)
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                await run_agent(
                    self.agent, self.bind, on_ready=ready.set_result, stop=self._stop, access=self.access
                )
            finally:
                store.close()

        def thread_main() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise

        self._thread = threading.Thread(target=thread_main, name="agent-under-test", daemon=True)
        self._thread.start()
        self.address = ready.result(timeout=20)
        host, port = self.address.rsplit(":", 1)
        if host in ("0.0.0.0", "[::]"):  # bound to every interface: call it as this PC would
            self.address = f"127.0.0.1:{port}"
        self.token = read_local_token(self.data_dir) or ""
        self.http = httpx.Client(
            base_url=f"http://{self.address}",
            headers={"authorization": f"Bearer {self.token}"},
            timeout=20,
        )
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the agent did not stop"
        self._thread = None

    def call_on_loop(self, work: Any) -> Any:
        """Run `work()` on the agent's loop (where its store lives) and return the result."""
        assert self._loop is not None

        async def run() -> Any:
            return work()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def status(self) -> dict[str, Any]:
        assert self.http is not None
        return dict(self.http.get("/api/v1/status").json())

    def wait_synced(self, timeout: float = 10) -> None:
        wait_until(
            lambda: self.status()["revision"] >= self.cloud.head, timeout=timeout, what="the agent to sync"
        )

    def pack(self, order_ref: str, request_id: str, station: str = "S1") -> httpx.Response:
        assert self.http is not None
        return self.http.post(
            "/api/v1/pack", json={"order_ref": order_ref, "station": station, "request_id": request_id}
        )

    def job(self, job_id: str, wait_s: float = 10) -> dict[str, Any]:
        """`GET /api/v1/jobs/{id}` once its printer has had its say (confirmed, held, could not
        confirm), or as it is after `wait_s`: what a test reads to see a label printed."""
        assert self.http is not None
        response = self.http.get(f"/api/v1/jobs/{job_id}", params={"wait_s": str(wait_s)})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, kind: str | None = None) -> list[Any]:
        return [event for event in self.cloud.received.values() if kind is None or event.kind == kind]
