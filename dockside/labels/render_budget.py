"""The render budget: how much work one render of a label template may do, wherever it runs.

Each operation a template can perform is bounded on its own (`dockside.labels.work_bounds`); the
budget bounds their sum. A render opens a meter (`RenderMeter`) in a context variable, and the
sandbox charges it in work units before the work is done:

- every loop turn charges its body's weight (its nodes, its literal text by 64 characters, and
  each `{{ value }}` as the most text it may print), so the units also bound the label's size; a
  loop over a list or text pays for all its turns before the first;
- every bounded operator and filter charges by the size of what it reads or builds;
- an ESC/POS `each` turn also pays for the printer bytes its operations will make.

Every `CHECK_EVERY` units the meter also reads the rendering thread's CPU clock (from the first
check on), so a render that does something costly per unit still ends near its time limit. A
render past either limit stops with `TemplateOverrun`. CPU time, not wall time: a machine that is
busy elsewhere does not make a good template look slow.

The check costs one context variable lookup and an addition per charge, and opening a meter
about as much as one dict copy; a shipped label charges a handful of times (the 4x6 label
never). Outside a render there is no meter, and charging raises: that is
what keeps Jinja2's compile-time constant folding from running a filter with no budget at all
(it treats the error as "not constant" and leaves the work to the metered render).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

from dockside.errors import TemplateOverrun

__all__ = [
    "CHECK_EVERY",
    "STATION_BUDGET",
    "VALIDATION_BUDGET",
    "RenderBudget",
    "RenderMeter",
    "charge",
    "current_meter",
    "metered_items",
    "metered_loop",
    "start_render",
    "stop_render",
]

CHECK_EVERY = 256
_T = TypeVar("_T")
_SIZED = (list, tuple, str, dict)


@dataclass(frozen=True, slots=True)
class RenderBudget:
    """What one render may spend: work units and CPU seconds of the rendering thread."""

    units: int
    seconds: float


# A pack or wave label at a station: a shipped label spends well under 1,000 units and 1 ms.
STATION_BUDGET = RenderBudget(units=200_000, seconds=0.25)
# A sample render at validation gets a quarter of a station's units, so a template that passes
# leaves room for orders bigger than its sample before it meets the station's limit.
VALIDATION_BUDGET = RenderBudget(units=50_000, seconds=0.1)


class _Unmetered(Exception):
    """Charged outside a render: Jinja2's constant folding asking, at compile time."""


class RenderMeter:
    """The units one render has spent, and when it must stop."""

    __slots__ = ("budget", "deadline", "next_check", "used")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self.used = 0
        self.next_check = CHECK_EVERY
        # The clock starts at the first check: reading a CPU clock costs more than a shipped
        # label's whole metering, and a render that stays under CHECK_EVERY units is too small to time.
        self.deadline = 0.0

    def charge(self, units: int) -> None:
        """Spend `units`; raises TemplateOverrun once the render is past its budget."""
        self.used += units
        if self.used >= self.next_check:
            self.check()

    def check(self) -> None:
        """Stop the render if it is past its units or its CPU time."""
        budget = self.budget
        if self.used > budget.units:
            raise TemplateOverrun(
                f"the render used more than its {budget.units:,} work units (loop turns, items filtered "
                "and text built): simplify the loops or the data they walk",
            )
        now = time.thread_time()
        if not self.deadline:
            self.deadline = now + budget.seconds
        elif now > self.deadline:
            raise TemplateOverrun(
                f"the render used more than its {budget.seconds:g} s of CPU time: "
                "simplify the loops or the data they walk",
            )
        self.next_check = self.used + CHECK_EVERY


_METER: ContextVar[RenderMeter | None] = ContextVar("dockside_render_meter", default=None)


def start_render(budget: RenderBudget) -> Token[RenderMeter | None]:
    """Open a meter for a render on this thread (or task); pass the token to `stop_render`."""
    return _METER.set(RenderMeter(budget))


def stop_render(token: Token[RenderMeter | None]) -> None:
    """Close the meter `start_render` opened."""
    _METER.reset(token)


def current_meter() -> RenderMeter:
    """The meter of the render running here; raises outside a render."""
    meter = _METER.get()
    if meter is None:
        raise _Unmetered("no render is running: template work happens only inside a metered render")
    return meter


def charge(units: int) -> None:
    """Charge the running render `units`; raises TemplateOverrun past its budget."""
    meter = _METER.get()
    if meter is None:
        raise _Unmetered("no render is running: template work happens only inside a metered render")
    meter.used += units
    if meter.used >= meter.next_check:
        meter.check()


def metered_loop(items: Any, weight: int) -> Any:
    """The items of a template loop whose every turn costs `weight`.

    A list, text or dict is charged for all its turns before the first (the loop cannot stop
    early), so an oversized loop never starts; anything else is charged turn by turn.
    """
    meter = current_meter()
    if isinstance(items, _SIZED):
        meter.charge(len(items) * weight)
        return items
    return _metered(meter, items, weight)


def metered_items(items: Iterable[_T], weight: int) -> Iterator[_T]:
    """`items`, charging the running render `weight` units for each one taken."""
    meter = current_meter()
    return _metered(meter, items, weight)


def _metered(meter: RenderMeter, items: Iterable[_T], weight: int) -> Iterator[_T]:
    for item in items:
        meter.used += weight
        if meter.used >= meter.next_check:
            meter.check()
        yield item
