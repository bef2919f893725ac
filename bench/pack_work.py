"""The work a pack must do before it answers, in one process, without HTTP: a floor for pack_latency.

Runs what the agent's pack path does between the request and the answer, with the agent's own
store, jobs, outbox, rules and the shipped 4x6 template: read the order, look up the request id
and the order's first job, decide, render, commit the job `sending`, send the label over a TCP
socket on loopback, commit it `printed` with its three events, encode the answer. Timed back to
back, and with a 1 ms pause before each pack (about the gap between two packs in
`bench/pack_latency.py`, where each is one HTTP round trip after the last): on this virtual
machine an idle gap leaves the CPU caches cold, which the pause shows apart from the HTTP layer.
Prints one JSON object: per mode p50 and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.demo_data import SHIP_FROM, demo_orders
from dockside.labels import compile_template, load_shipped_template
from dockside.labels.context import label_context
from dockside.rules import decide
from edge_agent.packing.pack import PACKED_EVENTS
from edge_agent.printing.jobs import Job, JobDecision, Jobs, JobStatus, new_job_id
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox

PACKS = 2_000
WARMUP = 200


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _sink() -> socket.socket:
    """A loopback peer that reads and drops whatever is sent, as a printer that keeps up."""
    server = socket.create_server(("127.0.0.1", 0))

    def drain() -> None:
        peer, _ = server.accept()
        with peer:
            while peer.recv(65536):
                pass

    threading.Thread(target=drain, daemon=True).start()
    sender = socket.create_connection(server.getsockname()[:2])
    sender.setblocking(False)
    return sender


def _run(folder: Path, packs: int, pause_s: float) -> list[float]:
    shipped = load_shipped_template("shipping-4x6")
    template = compile_template(shipped.language, shipped.source, width_dots=shipped.width_dots)
    store = Store.open(folder)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")  # the agent checkpoints off the pack path
    jobs, outbox = Jobs(store), Outbox(store)
    orders = demo_orders(packs + WARMUP, prefix="WORK")
    with store.atomic():
        store.conn.executemany(
            "INSERT INTO orders (order_ref, body, state, revision) VALUES (?, ?, 'open', 1)",
            [(order["order_ref"], json.dumps(order)) for order in orders],
        )
    printer = _sink()
    timings: list[float] = []
    for n, order in enumerate(orders):
        if pause_s:
            time.sleep(pause_s)
        started = time.perf_counter()
        ref, request_id = order["order_ref"], f"work-{n}"
        jobs.by_request(request_id)
        row = store.conn.execute("SELECT body, state FROM orders WHERE order_ref = ?", (ref,)).fetchone()
        body: dict[str, Any] = json.loads(row[0])
        jobs.first_for_order(ref)
        decision = decide(body, 1234, None)
        job_id = new_job_id()
        label = template.render(
            label_context(
                body,
                weight_g=1234,
                carrier=decision.carrier,
                service=decision.service,
                tracking=job_id.upper()[-20:],
                ship_from=SHIP_FROM,
                station="S1",
                job_id=job_id,
                printed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
        now = now_ms()
        job = Job(
            job_id=job_id,
            request_id=request_id,
            order_ref=ref,
            station="S1",
            printer="S1-label",
            status=JobStatus.SENDING,
            weight_g=1234,
            decision=JobDecision(carrier=decision.carrier, service=decision.service, template="shipping-4x6"),
            created_at_ms=now,
            updated_at_ms=now,
            reprint_of=None,
            reason="",
            label=label,
            message="",
        )
        jobs.insert(job)
        printer.send(label)
        with store.atomic():
            jobs.set_status(job_id, JobStatus.SENT, sent=True)
            outbox.record_many(
                PACKED_EVENTS, {"job_id": job_id, "weight_g": 1234}, order_ref=ref, station="S1"
            )
        json.dumps({"status": "sent", "job_id": job_id, "order_ref": ref, "weight_g": 1234})
        if n >= WARMUP:
            timings.append((time.perf_counter() - started) * 1e6)
    printer.close()
    store.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=PACKS, help=f"timed packs per mode (default {PACKS})")
    packs = parser.parse_args(argv).packs
    result: dict[str, Any] = {"packs": packs}
    for mode, pause_s in (("back_to_back", 0.0), ("after_1ms_pause", 0.001)):
        with tempfile.TemporaryDirectory(prefix="dockside-pack-work-") as folder:
            timings = _run(Path(folder), packs, pause_s)
        result[mode] = {
            "p50_us": round(statistics.median(timings), 1),
            "p99_us": round(_percentile(timings, 0.99), 1),
        }
    result["budget_over_floor_us"] = 500  # pack_latency's goal for p50 - floor
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
