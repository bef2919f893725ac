"""A carrier's 4x6 PDF label rendered to a ZPL graphic, as the agent prints an OMS label.

Two labels, each built here with fpdf2 the way carriers' PDFs come:

- `vector`: text in the PDF's own fonts, rules and boxes, the tracking number as a Code 128 of
  filled rectangles and a 2D code of 1,000-odd squares (the shape of a UPS or FedEx label);
- `image`: one 203-dpi picture of a label on the page (how many shipping APIs hand out PDFs).

Each is converted with `label_to_zpl` (check, PDFium render at the printer's resolution, cut to
one bit a dot, Z64 `^GFA`) `RENDERS` times at 203 and at 300 dpi, every call timed on its own, and
the cloud's ingest check (`check_carrier_label`) on its own. As in `bench/render.py`, the calls
run in rounds with a fixed floor interleaved, and the figures are the quietest round's (this
2-core machine is shared); `all_rounds_*` cover every call, and `cpu_p50_ms` is the thread's own
CPU time a call (what it costs when nothing else wants the core). Prints one JSON object: `p50_ms` and
`p99_ms` are the slower label's at 203 dpi per page; the goal is p50 <= 30 ms.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import json
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import qrcode  # type: ignore[import-untyped]
from barcode.codex import Code128  # type: ignore[import-untyped]
from fpdf import FPDF
from PIL import Image, ImageDraw

from dockside.labels.carrier_documents import check_carrier_label, label_to_zpl
from dockside.shipping.parcels import LabelDocument, LabelFormat

RENDERS = 500
ROUNDS = 5
WARMUP = 10
GOAL_P50_MS = 30.0
TRACKING = "1Z999AA10123456784"
ADDRESS = ("MARIA ROSSI", "ACME IMPORTS SRL", "VIA DEL CORSO 123 INT 4", "00186 ROMA RM", "ITALY")


def _vector_label() -> bytes:
    pdf = FPDF(unit="in", format=(4, 6))
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_line_width(0.02)
    pdf.set_font("helvetica", "B", 11)
    pdf.text(0.15, 0.3, "SHIPPER NAME  (555) 555-0100")
    pdf.set_font("helvetica", "", 9)
    for row, line in enumerate(("1 WAREHOUSE WAY", "NEWARK NJ 07102", "UNITED STATES")):
        pdf.text(0.15, 0.48 + row * 0.15, line)
    pdf.set_font("helvetica", "B", 12)
    pdf.text(2.6, 0.3, "4 LBS   1 OF 1")
    pdf.line(0, 1.0, 4, 1.0)
    pdf.text(0.15, 1.2, "SHIP TO:")
    pdf.set_font("helvetica", "B", 13)
    for row, line in enumerate(ADDRESS):
        pdf.text(0.5, 1.42 + row * 0.2, line)
    pdf.line(0, 2.45, 4, 2.45)
    matrix = qrcode.QRCode(border=0, box_size=1)
    matrix.add_data(f"[)>\x1e01\x1d02{TRACKING}\x1d840\x1d003\x1d{ADDRESS[3]}" * 2)
    matrix.make(fit=True)
    module = 1.3 / len(matrix.get_matrix())
    for y, matrix_row in enumerate(matrix.get_matrix()):
        for x, dark in enumerate(matrix_row):
            if dark:
                pdf.rect(0.15 + x * module, 2.6 + y * module, module, module, style="F")
    pdf.set_font("helvetica", "B", 40)
    pdf.text(1.7, 3.2, "ROM 001")
    pdf.line(0, 4.0, 4, 4.0)
    pdf.set_font("helvetica", "B", 16)
    pdf.text(0.15, 4.25, "UPS GROUND")
    pdf.set_font("helvetica", "", 10)
    pdf.text(0.15, 4.45, f"TRACKING #: {TRACKING}")
    bars = str(Code128(TRACKING).build()[0])
    width = 0.016
    left = (4 - len(bars) * width) / 2
    for index, bar in enumerate(bars):
        if bar == "1":
            pdf.rect(left + index * width, 4.6, width, 1.0, style="F")
    pdf.set_font("helvetica", "", 7)
    pdf.text(0.15, 5.9, "BILLING: P/P    REF: ORDER-0001    XOL 26.01.07    NV45 17.0A 12/2025")
    return bytes(pdf.output())


def _image_label() -> bytes:
    picture = Image.new("L", (812, 1218), 255)
    pen = ImageDraw.Draw(picture)
    for row, line in enumerate(("SHIP TO:", *ADDRESS)):
        pen.text((40, 240 + row * 30), line, fill=0)
    pen.rectangle([0, 200, 811, 203], fill=0)
    bars = str(Code128(TRACKING).build()[0])
    left = (812 - len(bars) * 3) // 2
    for index, bar in enumerate(bars):
        if bar == "1":
            pen.rectangle([left + index * 3, 900, left + index * 3 + 2, 1100], fill=0)
    png = io.BytesIO()
    picture.save(png, format="PNG")
    pdf = FPDF(unit="in", format=(4, 6))
    pdf.add_page()
    pdf.image(io.BytesIO(png.getvalue()), x=0, y=0, w=4, h=6)
    return bytes(pdf.output())


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _round(
    call: Callable[[], object], floor: Callable[[], object], renders: int
) -> tuple[list[float], list[float], list[float]]:
    timings, cpu, floors = [], [], []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for _ in range(renders):
        start, cpu_start = clock(), cpu_clock()
        call()
        middle, cpu_end = clock(), cpu_clock()
        floor()
        end = clock()
        timings.append((middle - start) / 1e6)
        cpu.append((cpu_end - cpu_start) / 1e6)
        floors.append((end - middle) / 1e6)
    return timings, cpu, floors


def _timed(call: Callable[[], object], floor: Callable[[], object], renders: int) -> dict[str, float]:
    """Percentiles of the quietest round (lowest floor p99), and of all rounds together."""
    for _ in range(WARMUP):
        call()
    rounds = [_round(call, floor, max(1, renders // ROUNDS)) for _ in range(ROUNDS)]
    timings, cpu, floors = min(rounds, key=lambda measured: _percentile(measured[2], 0.99))
    every = [sample for measured in rounds for sample in measured[0]]
    return {
        "p50_ms": round(_percentile(timings, 0.50), 2),
        "p99_ms": round(_percentile(timings, 0.99), 2),
        "cpu_p50_ms": round(_percentile(cpu, 0.50), 2),
        "floor_p50_ms": round(_percentile(floors, 0.50), 2),
        "all_rounds_p50_ms": round(_percentile(every, 0.50), 2),
        "all_rounds_p99_ms": round(_percentile(every, 0.99), 2),
        "max_ms": round(max(every), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--renders", type=int, default=RENDERS, help="conversions timed per label and dpi")
    args = parser.parse_args(argv)
    labels = {"vector": _vector_label(), "image": _image_label()}
    # The floor: 128 KB (a 4x6 label's rows at 203 dpi) through zlib, the same C work every time,
    # interleaved with the conversions, so a round that other work on the machine slowed shows.
    rows = bytes(range(256)) * 512
    floor = functools.partial(zlib.compress, rows, 6)
    results: dict[str, Any] = {}
    for name, pdf in labels.items():
        doc = LabelDocument(format=LabelFormat.PDF, data_base64=base64.b64encode(pdf).decode("ascii"))
        entry: dict[str, Any] = {"pdf_bytes": len(pdf)}
        for dpi in (203, 300):
            size = {"dpi": dpi, "width_dots": 4 * dpi, "height_dots": 6 * dpi}
            zpl = label_to_zpl(doc, **size)
            entry[f"dpi_{dpi}"] = {
                "zpl_bytes": len(zpl),
                **_timed(functools.partial(label_to_zpl, doc, **size), floor, args.renders),
            }
        entry["ingest_check"] = _timed(functools.partial(check_carrier_label, doc), floor, args.renders)
        results[name] = entry
    slower = max(results.values(), key=lambda entry: entry["dpi_203"]["p50_ms"])
    report = {
        "benchmark": "carrier_label",
        "what": "a 4x6 PDF carrier label (one page) to a Z64 ^GFA ZPL label, check included",
        "renders_per_label": args.renders,
        "rounds": ROUNDS,
        "reported_round": "the quietest (lowest floor p99); all_rounds_* cover every conversion",
        "p50_ms": slower["dpi_203"]["p50_ms"],
        "p99_ms": slower["dpi_203"]["p99_ms"],
        "p50_ms_300dpi": max(entry["dpi_300"]["p50_ms"] for entry in results.values()),
        "p99_ms_300dpi": max(entry["dpi_300"]["p99_ms"] for entry in results.values()),
        "goal_p50_ms": GOAL_P50_MS,
        "labels": results,
    }
    report["ok"] = report["p50_ms"] <= GOAL_P50_MS
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
