"""`make demo`: the main job on the embedded default (SQLite), running until Ctrl-C.

Starts the cloud, a mock ZPL printer and a mock MT-SICS scale, loads the shipped templates, a
station S1 wired to the mocks and 100 orders DEMO-0001..DEMO-0100 for warehouse WH1, enrolls and
starts one agent, then prints the URLs and a curl that packs an order. State lives under .demo/;
the agent's local API token (`dockside-agent local-token`) is copied to .demo/agent-token (0600).
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.demo_parcels import ParcelFeeder
from bench.demo_shipping import provision_shipping
from bench.provision import provision
from bench.stack import Stack, StackError
from dockside.secret_files import write_private

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
CLOUD_RESTART_S = 30


def main() -> int:
    if DEMO.exists():
        shutil.rmtree(DEMO)  # every demo starts from the same known state
    DEMO.mkdir()
    stack = Stack(DEMO)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (in the background)
    try:
        print("Starting the Dockside demo (state in .demo/, logs in .demo/logs/) ...", flush=True)
        stack.start_cloud(http="127.0.0.1:8000", grpc="127.0.0.1:50051")
        write_private(DEMO / "admin-token", stack.admin_token + "\n")
        stack.start_printer(port=9100, control_port=9180, serial="ZD421-DEMO-01", store=DEMO / "printer")
        stack.start_printer(
            "slip-printer",
            port=9101,
            control_port=9182,
            serial="TM-T88-DEMO-01",
            language="escpos",
            store=DEMO / "slips",
        )
        stack.start_scale(control_port=9181, link=DEMO / "scale")
        stack.control("scale", "POST", "/weight", {"grams": 1234, "stable": True})
        provision(stack, order_count=100, scale_port=str(DEMO / "scale"))
        provision_shipping(stack, scale_port=str(DEMO / "scale"))
        stack.enroll_agent("WH1")
        stack.start_agent(http="127.0.0.1:8100")
        write_private(DEMO / "agent-token", stack.agent_token() + "\n")
    except (StackError, TimeoutError, OSError) as exc:
        print(f"\nThe demo could not start: {exc}", file=sys.stderr)
        print(
            "If a port is taken, stop whatever uses 8000, 8100, 9100, 9101, 9180, 9181, 9182 or 50051.",
            file=sys.stderr,
        )
        stack.stop()
        return 1

    print(
        f"""
Dockside demo is running. Ctrl-C stops everything.

  Station page (packers)       http://127.0.0.1:8100/      type DEMO-0001 in the scan field, Enter
  Admin console                http://127.0.0.1:8000/console/   sign in with the token in .demo/admin-token
  Cloud admin API (OpenAPI)    http://127.0.0.1:8000/docs
  Cloud gRPC sync              127.0.0.1:50051
  Mock printer                 127.0.0.1:9100, labels at http://127.0.0.1:9180/labels and .demo/printer/
  Mock slip printer (ESC/POS)  127.0.0.1:9101, slips at http://127.0.0.1:9182/labels and .demo/slips/
  Mock scale                   {stack.processes["scale"].ready["pty"]} (.demo/scale), control http://127.0.0.1:9181/

Pack an order (the scale reads 1234 g). A weight serves one parcel: after each label the demo's
packer lifts the parcel off and puts the next one on (the console says so); the second command
puts a parcel of your own:

  curl -s -X POST http://127.0.0.1:8100/api/v1/pack -H 'content-type: application/json' \\
       -H "Authorization: Bearer $(cat .demo/agent-token)" \\
       -d '{{"order_ref": "DEMO-0001", "station": "S1", "request_id": "demo-1"}}'
  curl -s -X POST http://127.0.0.1:9181/weight -d '{{"grams": 2500, "stable": true}}'

See the order in the cloud:

  curl -s -H "Authorization: Bearer $(cat .demo/admin-token)" http://127.0.0.1:8000/api/v1/orders/DEMO-0001

Shipments (carrier DEMOPOST numbers parcels from a UPU S10 range leased to this agent; B2BFREIGHT
numbers cartons with GS1 SSCCs; PARCELAPI's labels come from the OMS). Scan on the station page,
or with the pack curl above and "parcel": 2 for a second carton:

  DEMO-B2C-2   two cartons: parcel 1, then parcel 2, each its own tracking number
  DEMO-B2B-1   two GS1 carton labels (SSCC, PO number, ship-to postal code) + a packing slip on the
               slip printer for each carton
  DEMO-PDF-1   the carrier's own label, sent by the OMS as a PDF, printed as a ZPL graphic

Close the day for the driver (a PDF with the manifest's barcode, and CSV), then hand it over:

  curl -s -X POST http://127.0.0.1:8000/api/v1/warehouses/WH1/manifests \\
       -H "Authorization: Bearer $(cat .demo/admin-token)" -H 'content-type: application/json' \\
       -d '{{"carrier": "DEMOPOST"}}'
  curl -s -o manifest.pdf -H "Authorization: Bearer $(cat .demo/admin-token)" \\
       http://127.0.0.1:8000/api/v1/manifests/1.pdf
  curl -s -X POST -H "Authorization: Bearer $(cat .demo/admin-token)" \\
       http://127.0.0.1:8000/api/v1/manifests/1/handover
""",
        flush=True,
    )

    def set_weight(grams: int) -> None:
        try:
            stack.control("scale", "POST", "/weight", {"grams": grams, "stable": True})
        except (StackError, OSError) as exc:
            print(f"Demo packer: could not put a parcel on the mock scale: {exc}", file=sys.stderr)
        except httpx.HTTPError as exc:
            print(f"Demo packer: the mock scale does not answer: {exc}", file=sys.stderr)

    feeder = ParcelFeeder(
        stack.agent_url(), set_weight, lambda line: print(line, flush=True), headers=stack.agent_headers()
    )
    try:
        cloud_down_since: float | None = None
        reconnecting_since: float | None = None
        while not stopping:
            feeder.tick()
            for process in list(stack.processes.values()):
                if process.alive():
                    continue
                if process.name == "cloud":
                    # Stopping the cloud is how the demo shows offline packing: bring it back later.
                    if cloud_down_since is None:
                        cloud_down_since = time.monotonic()
                        print(
                            f"Cloud stopped: packing goes on offline; it restarts in {CLOUD_RESTART_S} s.",
                            flush=True,
                        )
                    elif time.monotonic() - cloud_down_since > CLOUD_RESTART_S:
                        stack.start_cloud(http="127.0.0.1:8000", grpc="127.0.0.1:50051")
                        cloud_down_since = None
                        reconnecting_since = time.monotonic()
                        print(
                            "The cloud is back: the agent reconnects within about 30 s (it backs off "
                            "with jitter, as a fleet must) and then sends what it packed meanwhile.",
                            flush=True,
                        )
                    continue
                print(f"{process.name} stopped unexpectedly:\n{process.log_tail()}", file=sys.stderr)
                stopping = True
            if reconnecting_since is not None and stack.processes["cloud"].alive():
                status = _agent_status(stack)
                if status is not None and status.get("online"):
                    print(
                        f"The agent is online again after {time.monotonic() - reconnecting_since:.0f} s; "
                        f"{status.get('outbox_depth', '?')} event(s) still to send.",
                        flush=True,
                    )
                    reconnecting_since = None
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\nStopping the demo ...", flush=True)
    feeder.close()
    stack.stop()
    print("Stopped. State is kept in .demo/ until the next `make demo`.")
    return 0


def _agent_status(stack: Stack) -> dict[str, Any] | None:
    """The agent's /api/v1/status, or None while it does not answer."""
    try:
        response = httpx.get(f"{stack.agent_url()}/api/v1/status", headers=stack.agent_headers(), timeout=2)
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


if __name__ == "__main__":
    sys.exit(main())
