"""The carrier labels' worker starts ahead of need: when an order with a PDF or PNG label reaches
the agent, and at start when the cache holds one, never for orders without such a label (hostile
parcel shapes included), so a packer's first PDF label does not wait for the worker's imports."""

from __future__ import annotations

import base64
from pathlib import Path

from edge_agent.sync import MemoryTransport
from tests.edge_agent.agent_harness import RunningAgent, order_body, publish_warehouse
from tests.edge_agent.waiting import wait_until

PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()  # never drawn here: only its format counts


def _worker_pid(agent: RunningAgent) -> int | None:
    assert agent.agent is not None
    return agent.agent.labeller.renderer.pid


def test_an_order_with_a_pdf_label_starts_the_worker_and_others_do_not(data_dir: Path) -> None:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    zpl = [{"label": {"format": "zpl", "data_base64": "XlhB"}}]
    cloud.publish("order", "Z-1", order_body("Z-1", parcels=zpl))
    for n, parcels in enumerate(
        [
            "pdf",
            [1, None, "pdf", {"label": "pdf"}, {"label": {"format": ["pdf"]}}, {"label": {"format": "PDF "}}],
            {"label": {"format": "pdf"}},  # an object, not a list of parcels
        ]
    ):
        cloud.publish("order", f"H-{n}", order_body(f"H-{n}", parcels=parcels))
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        assert running.call_on_loop(lambda: _worker_pid(running)) is None
        pdf = [{"label": {"format": "pdf", "data_base64": PDF}}]
        cloud.publish("order", "D-1", order_body("D-1", parcels=pdf))
        pid = wait_until(lambda: _worker_pid(running), timeout=10, what="the label worker to start")
        assert pid != running.call_on_loop(lambda: __import__("os").getpid())
    finally:
        running.stop()
    assert _worker_pid(running) is None  # stopped with the agent

    # Started again over the same cache (which holds D-1): the worker starts with the agent.
    again = RunningAgent(data_dir, cloud).start()
    try:
        wait_until(lambda: _worker_pid(again), timeout=10, what="the label worker to start at start")
    finally:
        again.stop()


def test_a_png_label_in_a_later_parcel_counts(data_dir: Path) -> None:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    parcels = [{"tracking_number": "A1"}, {"label": {"format": "png", "data_base64": PDF}}]
    cloud.publish("order", "P-1", order_body("P-1", parcels=parcels))
    running = RunningAgent(data_dir, cloud).start()
    try:
        wait_until(lambda: _worker_pid(running), timeout=10, what="the label worker to start")
    finally:
        running.stop()
