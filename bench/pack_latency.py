"""Scan to label bytes at the mock printer, through the agent's real local API, warm.

Starts a real stack (cloud, one agent, and for each of `--stations` stations (4) its own mock
printer and mock scale) in a temporary folder and packs orders over one keep-alive HTTP
connection, measuring each round trip. The floor is the same server's /healthz over the same
connection, measured right before each pack so machine noise hits both alike. Every call
carries the agent's local token (`Authorization: Bearer`), as a program on the agent's PC sends it.

Everything runs as in a warehouse: the agent polls every printer's status (`~HS`) on its usual
clock (every `printer_check_interval_s`, 1 s) all through the run, and a weight serves one
parcel only. So the bench packs in rounds, as a busy warehouse's stations do: it puts a new
parcel (its own weight) on every station's scale and waits, untimed, until the agent reports
each one ready (`parcel_ready`; a reader needs two agreeing readings 50 ms apart), calling
/healthz meanwhile as station pages poll; then it scans one order at each station in turn,
back to back. Every pack of a round is timed. The first pack of a round follows the ~100 ms
wait, and on this virtual machine an idle gap leaves the CPU caches cold (a log call measured
6 us back to back and 280 us after a 50 ms sleep): its figures are reported apart as well
(`first_of_round_*`), and `--stations 1` times only such packs.

At the end it times a label sent while a status poll of its printer waits for the `~HS`
reply (on a lane of its own to the same mock printer): it must not wait for the reply.
Prints one JSON object; `--packs N` changes the sample size; `--range-carrier` makes every pack take
a leased tracking number (a range carrier decided by the ruleset), as a real parcel carrier does.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.demo_data import station_body
from bench.provision import provision, provision_range_carrier
from bench.stack import Stack, running_stack, wait_for
from edge_agent.devices import PrinterConfig, open_printer
from edge_agent.devices.printer_lane import PrinterLane

PACKS = 2000
WARMUP = 100
STATIONS = 4
POLL_INTERVAL_S = 1.0  # the agent's default printer_check_interval_s, which `dockside-agent run` uses


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _parcel_grams(n: int) -> int:
    # Neighbouring parcels differ by far more than the scale's same-parcel band (10 g).
    return 1000 + (n % 40) * 25


async def _send_during_status_poll(printer_port: int, rounds: int = 300) -> dict[str, float]:
    """How long a label send takes alone, and while a status poll of its printer is in flight."""
    config = PrinterConfig(id="overlap-probe", language="zpl", host="127.0.0.1", port=printer_port)
    lane = PrinterLane(config, open_printer(config))
    label = b"^XA" + b"^FO50,50^A0N,40,40^FDBENCH-OVERLAP^FS" * 60 + b"^XZ"
    alone: list[float] = []
    during: list[float] = []
    try:
        await lane.check()
        await lane.send(label)
        for _ in range(rounds):
            t0 = time.perf_counter()
            await lane.send(label)
            alone.append((time.perf_counter() - t0) * 1000)
            poll = asyncio.create_task(lane.check())
            await asyncio.sleep(0)  # the ~HS request is out; its reply is awaited in the lane thread
            t0 = time.perf_counter()
            await lane.send(label)
            during.append((time.perf_counter() - t0) * 1000)
            await poll
    finally:
        await asyncio.to_thread(lane.close)
    return {
        "send_alone_p50_ms": round(statistics.median(alone), 3),
        "send_during_status_poll_p50_ms": round(statistics.median(during), 3),
        "send_during_status_poll_p99_ms": round(_percentile(during, 0.99), 3),
    }


def _add_stations(stack: Stack, count: int) -> None:
    """Stations S2..S<count>, each with its own mock printer and scale, as at a busy warehouse."""
    for n in range(2, count + 1):
        printer = stack.start_printer(f"printer{n}", serial=f"ZD421-BENCH{n}")
        scale = stack.start_scale(f"scale{n}")
        stack.admin_call(
            "POST",
            "/api/v1/warehouses/WH1/stations",
            station_body(
                f"S{n}",
                printer_id=printer.ready["serial"],
                printer_port=int(printer.ready["port"]),
                scale_port=scale.ready["pty"],
            ),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=PACKS, help=f"timed packs (default {PACKS})")
    parser.add_argument(
        "--stations", type=int, default=STATIONS, help=f"stations packing in turn (default {STATIONS})"
    )
    parser.add_argument(
        "--range-carrier",
        action="store_true",
        help="every pack takes a leased tracking number (UPU S10 range carrier) in its transaction",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.stations <= 16:
        parser.error("--stations must be 1 to 16")
    rounds_wanted = -(-args.packs // args.stations)
    warmup_rounds = -(-WARMUP // args.stations)
    with tempfile.TemporaryDirectory(prefix="dockside-bench-") as tmp, running_stack(Path(tmp)) as stack:
        stack.start_cloud()
        stack.start_printer()
        stack.start_scale()
        orders = provision(
            stack, order_count=(rounds_wanted + warmup_rounds) * args.stations, order_prefix="BENCH"
        )
        _add_stations(stack, args.stations)
        if args.range_carrier:
            # Blocks big enough that a top-up (online, from the events) never waits for the cloud.
            provision_range_carrier(stack, block_size=1_000)
        stations = [f"S{n}" for n in range(1, args.stations + 1)]
        scales = ["scale"] + [f"scale{n}" for n in range(2, args.stations + 1)]
        stack.enroll_agent("WH1")
        agent = stack.start_agent()
        host, port = agent.ready["http"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        # Authenticated as a program on the agent's PC is: the local token on every call.
        authorization = stack.agent_headers()

        def call(method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, bytes]:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"content-type": "application/json", **authorization} if payload else authorization
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()

        def floor_state() -> dict[str, dict[str, Any]]:
            status, body = call("GET", "/api/v1/status")
            if status != 200:
                raise RuntimeError(f"GET /api/v1/status -> {status}")
            return {s["code"]: s for s in json.loads(body)["stations"]}

        def inside_agent() -> tuple[float, float]:
            """The agent's own pack timer (request in to answer out): total seconds and count."""
            status, body = call("GET", "/metrics")
            if status != 200:
                raise RuntimeError(f"GET /metrics -> {status}")
            found = {"sum": 0.0, "count": 0.0}
            for line in body.decode().splitlines():
                for kind in found:
                    # A pack answers `sent` (its label went out; the printer confirms it after).
                    if line.startswith(f'dockside_pack_seconds_{kind}{{outcome="sent"}}'):
                        found[kind] = float(line.rsplit(" ", 1)[1])
            return found["sum"], found["count"]

        last_ref = orders[-1]["order_ref"]

        def synced() -> bool:
            status, _ = call("GET", f"/api/v1/orders/{last_ref}")
            return status == 200 and all(code in floor_state() for code in stations)

        wait_for(synced, timeout=60, what="the agent to sync the bench orders and stations")

        def put_parcels(round_no: int) -> None:
            """A new parcel on every station's scale; return once the agent has each ready to pack."""
            wanted = {code: _parcel_grams(round_no + n) for n, code in enumerate(stations)}
            for code, scale in zip(stations, scales, strict=True):
                stack.control(scale, "POST", "/weight", {"grams": wanted[code], "stable": True})
            # Each reader needs two agreeing readings (it polls every 50 ms). Meanwhile the bench
            # keeps calling /healthz, as a station page polls, so the agent is not idle.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for _ in range(10):
                    call("GET", "/healthz")
                state = floor_state()
                if all(
                    state[code]["scale"]["weight_g"] == wanted[code] and state[code]["scale"]["parcel_ready"]
                    for code in stations
                ):
                    return
            raise TimeoutError(f"the agent did not see the new parcels {wanted} within 10 s")

        floor: list[float] = []
        packs: list[float] = []
        first_of_round: list[float] = []
        checks_before = 0
        inside_before = (0.0, 0.0)
        started = time.perf_counter()
        refs = iter(orders)
        for round_no in range(warmup_rounds + rounds_wanted):
            put_parcels(round_no)
            for turn, code in enumerate(stations):
                order_ref = next(refs)["order_ref"]
                t0 = time.perf_counter()
                status, _ = call("GET", "/healthz")
                t1 = time.perf_counter()
                status_pack, body = call(
                    "POST",
                    "/api/v1/pack",
                    {"order_ref": order_ref, "station": code, "request_id": f"bench-{order_ref}"},
                )
                t2 = time.perf_counter()
                if status != 200 or status_pack != 200:
                    raise RuntimeError(f"pack {order_ref} at {code} failed: {status_pack} {body!r}")
                if round_no >= warmup_rounds:
                    floor.append((t1 - t0) * 1000)
                    packs.append((t2 - t1) * 1000)
                    if turn == 0:
                        first_of_round.append((t2 - t1) * 1000)
            if round_no == warmup_rounds - 1:
                started = time.perf_counter()
                checks_before = sum(p["status_checks"] for s in floor_state().values() for p in s["printers"])
                inside_before = inside_agent()
        elapsed = time.perf_counter() - started
        inside_after = inside_agent()
        state = floor_state()
        checks = sum(p["status_checks"] for s in state.values() for p in s["printers"]) - checks_before
        inline_sends = sum(p["inline_sends"] for s in state.values() for p in s["printers"])
        printers = ["printer"] + [f"printer{n}" for n in range(2, args.stations + 1)]

        def every_label() -> int | None:
            count = sum(len(stack.control(printer, "GET", "/labels")) for printer in printers)
            return count if count >= len(orders) else None

        labels = wait_for(every_label, timeout=30, what="every label at the mock printers")
        conn.close()
        overlap = asyncio.run(_send_during_status_poll(int(stack.processes["printer"].ready["port"])))

    result = {
        "packs": len(packs),
        "stations": args.stations,
        "tracking": "leased range number" if args.range_carrier else "job reference (no carrier account)",
        "p50_ms": round(statistics.median(packs), 3),
        "p99_ms": round(_percentile(packs, 0.99), 3),
        "max_ms": round(max(packs), 3),
        "floor_p50_ms": round(statistics.median(floor), 3),
        "floor_p99_ms": round(_percentile(floor, 0.99), 3),
        "p50_over_floor_ms": round(statistics.median(packs) - statistics.median(floor), 3),
        # The first pack of each round follows ~100 ms of waiting for the parcels to settle: on
        # this virtual machine an idle gap leaves the CPU caches cold, so these run slower; a
        # single station (--stations 1) is all such packs.
        "first_of_round_p50_ms": round(statistics.median(first_of_round), 3),
        "first_of_round_p99_ms": round(_percentile(first_of_round, 0.99), 3),
        # The agent's own timer, request in to answer out: the rest of a round trip is HTTP and
        # waking the processes up.
        "inside_agent_mean_ms": round(
            (inside_after[0] - inside_before[0]) * 1000 / max(1.0, inside_after[1] - inside_before[1]), 3
        ),
        "labels_at_printers": labels,
        "status_polling": True,
        "status_poll_interval_s": POLL_INTERVAL_S,
        "status_checks_during_run": checks,
        "labels_sent_on_the_loop": inline_sends,
        "run_s": round(elapsed, 1),
        # A label sent while a status poll waits for its ~HS reply, on a lane of its own to the
        # same mock printer: it must not wait for the reply.
        **overlap,
        "weight_per_parcel": (
            "before every round the bench puts a new parcel (its own weight) on every station's "
            "mock scale and waits, untimed, until the agent reports each parcel_ready; then it "
            "scans one order at each station in turn, so every timed pack takes a fresh weight"
        ),
        "goal": {"p50_ms": 1.5, "p99_ms": 3.0, "p50_over_floor_ms": 0.5},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
