"""Compiled template render time, for each shipped template, with escaping on.

Each template is compiled once (as the agent does when a version arrives) and rendered with its
sample data many times; every render is timed on its own. The shipping label is also rendered with
hostile data in every text field (so the escaping does real work), and the floor is an empty
template in the same sandbox, measured interleaved so machine noise hits both alike.

The renders run in five rounds; p50_us and p99_us are those of the quietest round (the one whose
floor p99 is lowest), because other work on this 2-core machine can stall any single round;
all_rounds_* give the figures over every render. Prints one JSON object; the goal is p99 <= 200 us
per template. Every render is metered by the station's render budget, as at an agent.

`hostile_stopped` shows the other side of the budget: how long a hostile template holds the
rendering thread (an agent's event loop) before it is stopped: loops that run to the end of the
station budget, and the issue's data-dependent power, refused before it runs.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from dockside.errors import TemplateOverrun
from dockside.labels import STATION_BUDGET, compile_template, load_shipped_template, shipped_template_names
from dockside.labels.zpl_template import compile_zpl

RENDERS = 20_000
ROUNDS = 5
WARMUP = 1_000
GOAL_P99_US = 200.0
HOSTILE = "^XZ^XA^FO0,0^FDPWNED^FS ~JR ~HS\n\t_ 🙂 李小龍 שלום \x00\x1b"
HOSTILE_TEMPLATES = {
    "loops past the budget": (
        "^XA{% for a in 'x' * 9999 %}{% for b in 'x' * 9999 %}{{ b }}{% endfor %}{% endfor %}^XZ"
    ),
    "the issue's power": "^XA^CI28^FO1,1^FH^FD{{ (((parcel.weight_g)**64)**64)**64 }}^FS^XZ",
}
STOPS = 20


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _hostile(value: Any) -> Any:
    """The sample with every string that is not a number replaced by hostile text."""
    if isinstance(value, dict):
        return {key: _hostile(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hostile(item) for item in value]
    if isinstance(value, str) and not value.replace(".", "").isdigit():
        return HOSTILE
    return value


def _round(render: Callable[[], bytes], floor: Callable[[], bytes]) -> tuple[list[float], list[float]]:
    timings, floors = [], []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(RENDERS // ROUNDS):
            start = clock()
            render()
            middle = clock()
            floor()
            end = clock()
            timings.append((middle - start) / 1000)
            floors.append((end - middle) / 1000)
    finally:
        gc.enable()
    return timings, floors


def _measure(render: Callable[[], bytes], floor: Callable[[], bytes]) -> dict[str, float]:
    """Percentiles of the quietest round (lowest floor p99), and of all rounds together."""
    for _ in range(WARMUP):
        render()
        floor()
    rounds = [_round(render, floor) for _ in range(ROUNDS)]
    timings, floors = min(rounds, key=lambda measured: _percentile(measured[1], 0.99))
    every = [sample for measured in rounds for sample in measured[0]]
    return {
        "p50_us": round(_percentile(timings, 0.50), 1),
        "p99_us": round(_percentile(timings, 0.99), 1),
        "floor_p50_us": round(_percentile(floors, 0.50), 1),
        "floor_p99_us": round(_percentile(floors, 0.99), 1),
        "all_rounds_p50_us": round(_percentile(every, 0.50), 1),
        "all_rounds_p99_us": round(_percentile(every, 0.99), 1),
        "max_us": round(max(every), 1),
    }


def _stopped(source: str) -> dict[str, float]:
    """How long a hostile template runs before the sandbox stops it, in ms."""
    compiled = compile_zpl(source)
    context = {"parcel": {"weight_g": 1500}}
    timings = []
    for _ in range(STOPS):
        start = time.perf_counter_ns()
        try:
            compiled.render(context)
        except TemplateOverrun:
            timings.append((time.perf_counter_ns() - start) / 1e6)
        else:
            raise SystemExit(f"a hostile template rendered: {source}")
    return {"p50_ms": round(_percentile(timings, 0.5), 3), "max_ms": round(max(timings), 3)}


def main() -> int:
    empty = compile_zpl("^XA{{ job_id }}^XZ")
    floor = functools.partial(empty.render, {"job_id": "job-0042-0001"})
    results: dict[str, Any] = {}
    for name in shipped_template_names():
        shipped = load_shipped_template(name)
        compiled = compile_template(shipped.language, shipped.source, width_dots=shipped.width_dots)
        sample = copy.deepcopy(shipped.sample_data)
        label = compiled.render(sample)
        results[name] = {"language": shipped.language.value, "bytes": len(label)}
        results[name].update(_measure(functools.partial(compiled.render, sample), floor))
        if name == "shipping-4x6":
            hostile = _hostile(sample)
            results[f"{name} (hostile data)"] = {"language": "zpl", "bytes": len(compiled.render(hostile))}
            results[f"{name} (hostile data)"].update(
                _measure(functools.partial(compiled.render, hostile), floor)
            )
    worst = max(result["p99_us"] for result in results.values())
    stopped = {name: _stopped(source) for name, source in HOSTILE_TEMPLATES.items()}
    report = {
        "benchmark": "render",
        "renders_per_template": RENDERS,
        "escaping": True,
        "floor": "an empty ZPL template (one escaped value) rendered in the same sandbox, interleaved",
        "rounds": ROUNDS,
        "reported_round": "the quietest (lowest floor p99); all_rounds_* cover every render",
        "goal_p99_us": GOAL_P99_US,
        "templates": results,
        "worst_p99_us": worst,
        "station_budget": {"units": STATION_BUDGET.units, "cpu_seconds": STATION_BUDGET.seconds},
        "hostile_stopped": stopped,
        "ok": worst <= GOAL_P99_US,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
