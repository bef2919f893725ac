"""A wave of 10,000 labels rendered and sent: the agent's render and print path at full speed.

The shipping label is compiled once, as the agent does when a version arrives; each of 10,000
orders gets its own label context, render and `send` on the ZPL driver's one open connection to a
mock Zebra running as its own process (so its parsing does not share this process's GIL). The
clock stops when the printer has recorded every label. The floor is the same bytes sent without
rendering (pre-rendered), so the render's share is visible. Prints one JSON object; the goal is
>= 2,000 labels/s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.demo_data import SHIP_FROM, demo_orders
from bench.stack import running_stack, wait_for
from dockside.labels import compile_template, label_context, load_shipped_template
from edge_agent.devices import PrinterConfig, open_printer

LABELS = 10_000
GOAL_LABELS_PER_S = 2_000


def main() -> int:
    shipped = load_shipped_template("shipping-4x6")
    template = compile_template(shipped.language.value, shipped.source)
    orders = demo_orders(LABELS, prefix="WAVE")
    with tempfile.TemporaryDirectory(prefix="dockside-batch-") as tmp, running_stack(Path(tmp)) as stack:
        mock = stack.start_printer()
        printer = open_printer(
            PrinterConfig(id="wave-printer", language="zpl", host="127.0.0.1", port=int(mock.ready["port"]))
        )
        printer.open()

        def printed() -> int:
            return int(stack.control("printer", "GET", "/status")["labels_recorded"])

        def run(render: bool, labels: list[bytes]) -> tuple[float, list[bytes]]:
            before = printed()
            started = time.perf_counter()
            sent: list[bytes] = []
            for n, order in enumerate(orders):
                if render:
                    context = label_context(
                        order,
                        weight_g=int(order["expected_weight_g"]),
                        carrier="DOCKSIDE",
                        service=str(order["service_level"]),
                        tracking=f"DS{n:010d}US",
                        ship_from=SHIP_FROM,
                        station="S1",
                        job_id=f"wave-{n}",
                        printed_at="2026-11-22T10:00:00Z",
                    )
                    data = template.render(context)
                    sent.append(data)
                else:
                    data = labels[n]
                printer.send(data)
            wait_for(
                lambda: printed() >= before + LABELS,
                timeout=120,
                interval=0.01,
                what="every label at the printer",
            )
            return time.perf_counter() - started, sent

        seconds, labels = run(True, [])
        floor_seconds, _ = run(False, labels)
        printer.close()

    result = {
        "labels": LABELS,
        "seconds": round(seconds, 3),
        "labels_per_s": round(LABELS / seconds, 1),
        "floor_send_only_labels_per_s": round(LABELS / floor_seconds, 1),
        "label_bytes": sum(map(len, labels)) // LABELS,
        "goal_labels_per_s": GOAL_LABELS_PER_S,
        "ok": LABELS / seconds >= GOAL_LABELS_PER_S,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
