"""The per-scale background reader: the pack path takes the latest stable weight, never the serial line.

One thread per scale owns the port. It polls the scale, keeps the last few readings and their
times, and turns every failure into a `state` a person can read on the station page:

    starting       not read yet
    ok             answering (the weight may still be moving)
    not_answering  port open, no frames (scale off, wrong baud rate or protocol)
    unplugged      port gone; reopened with backoff until the device is back at the same path
    port_denied    the port exists but this user may not open it
    garbled        several frames in a row were noise
    overload / underload
    error          the scale said something Dockside cannot use (unit, unknown command)
    stopped

`stable_weight` answers from memory in microseconds; `wait_stable` waits on a condition for the
next good reading; `zero` and `tare` are queued to the thread, which owns the port.

A weight is used for one parcel only. `take_parcel_weight` claims the stable weight for a parcel
of an order (only that same parcel may take it again: its repeat answers at once); after that
the scale must show a new parcel before the next claim succeeds: it read (near) empty since (any
reading under `empty_below_g`, settled or still moving, so a second parcel of the very same
weight counts once the first was lifted off), or it settled on a weight clearly different from
the claimed one. So a packer who scans the next order while the previous parcel is still on the
scale (or just lifted it, and the reader still holds its weight) waits for the new parcel
instead of getting the old parcel's weight. An empty platform is never a parcel weight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from dockside.errors import ScaleError, ScaleGarbledFrame, ScalePortLost, ScaleUnsettled, ScaleWithoutWeight

from .config import ScaleConfig
from .scale import PROTOCOL_NAMES, Scale, WeightReading
from .scale_drivers import open_scale

__all__ = ["ScaleReader", "UsedWeight"]

log = logging.getLogger(__name__)

# The reader states a failure's wire code names; any other failure is "garbled" or "error".
_STATE_OF_CODE = {
    "scale_unplugged": "unplugged",
    "scale_port_denied": "port_denied",
    "scale_not_answering": "not_answering",
    "scale_overload": "overload",
    "scale_underload": "underload",
}
_GARBLED_IN_A_ROW = 3


@dataclass(frozen=True)
class UsedWeight:
    """The weight the last pack took from this scale, and for which parcel of which order."""

    grams: int
    order_ref: str
    parcel: int = 1


class ScaleReader:
    """Keeps one scale's latest readings current from a background thread."""

    def __init__(
        self,
        config: ScaleConfig,
        *,
        poll_interval_s: float = 0.05,
        stable_tolerance_g: int = 2,
        reopen_backoff_s: tuple[float, float] = (0.1, 2.0),
        command_timeout_s: float = 10.0,
        scale_factory: Callable[[ScaleConfig], Scale] = open_scale,
        empty_below_g: int = 10,
        same_parcel_g: int = 10,
    ) -> None:
        self.config = config
        # Below this the platform is empty (or holds only scale noise): never a parcel weight.
        self._empty_below_g = empty_below_g
        # A weight this close to the used one, with no empty reading between, is the same parcel.
        self._same_parcel_g = same_parcel_g
        self._used: UsedWeight | None = None
        self._emptied = True  # the scale read (near) empty since `_used` was taken
        self._before_claim: tuple[UsedWeight | None, bool] = (None, True)
        self.remembered = False  # remember_used was called (after a start, from the jobs)
        self._poll_interval_s = poll_interval_s
        self._tolerance_g = stable_tolerance_g
        self._backoff_min, self._backoff_max = reopen_backoff_s
        self._command_timeout_s = command_timeout_s
        self._factory = scale_factory
        self._name = f"{PROTOCOL_NAMES.get(config.protocol, config.protocol)} scale on {config.port}"
        self._changed = threading.Condition()
        self._history: deque[WeightReading] = deque(maxlen=8)
        self._latest: WeightReading | None = None
        self._state = "stopped"
        self._message = f"the {self._name} is not being read"
        self._commands: deque[tuple[str, Future[None]]] = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.readings_total = 0
        self.garbled_total = 0

    # -- what the agent reads ----------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def message(self) -> str:
        """What the state means for a packer, and what to do about it."""
        return self._message

    @property
    def died(self) -> bool:
        """The reader thread ended without being stopped (a bug it could not survive)."""
        thread = self._thread
        return thread is not None and not thread.is_alive()

    def latest(self) -> WeightReading | None:
        """The newest reading, stable or not, however old."""
        return self._latest

    def _stable_locked(self, max_age_s: float) -> WeightReading | None:
        if len(self._history) < 2:
            return None
        before, last = self._history[-2], self._history[-1]
        if not (before.stable and last.stable) or abs(last.grams - before.grams) > self._tolerance_g:
            return None
        if time.monotonic() - last.at > max_age_s:
            return None
        return last

    def stable_weight(self, max_age_s: float = 1.0) -> WeightReading | None:
        """The newest reading if the scale called it stable, the one before agrees, and it is fresh."""
        with self._changed:
            return self._stable_locked(max_age_s)

    def wait_stable(self, timeout_s: float, *, max_age_s: float = 1.0) -> WeightReading:
        """The next stable weight, waiting up to `timeout_s`; ScaleError saying why there is none."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = self._stable_locked(max_age_s)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        raise self._no_stable_weight(timeout_s)

    def _no_stable_weight(self, timeout_s: float) -> ScaleError:
        """Why no stable weight came within `timeout_s`, as the error to raise."""
        state, message = self._state, self._message
        if state in ("overload", "underload"):
            return ScaleWithoutWeight(message, code=f"scale_{state}")
        if state in ("ok", "garbled") and self._thread is not None:
            return ScaleUnsettled(
                f"the weight on the {self._name} did not settle within {timeout_s:g} s: "
                "keep the parcel still and clear of the edges, then scan again",
                code="scale_unstable",
            )
        return ScaleError(message, code="scale_not_answering")

    # -- one weight, one parcel ----------------------------------------------------------------

    def _parcel_locked(
        self, max_age_s: float, order_ref: str | None = None, parcel: int = 1
    ) -> WeightReading | None:
        found = self._stable_locked(max_age_s)
        if found is None or found.grams < self._empty_below_g:
            return None
        used = self._used
        if used is None or self._emptied or abs(found.grams - used.grams) > self._same_parcel_g:
            return found
        # The same parcel asking again: its earlier scan recorded no job (the pack path only
        # weighs a parcel without one), so the weight was never really spent. Another parcel of
        # the same order waits for its own weight.
        return (
            found if order_ref is not None and (used.order_ref, used.parcel) == (order_ref, parcel) else None
        )

    def parcel_weight(self, max_age_s: float = 1.0) -> WeightReading | None:
        """The stable weight a pack could take now (a parcel's, not used yet), without taking it."""
        with self._changed:
            return self._parcel_locked(max_age_s)

    def remember_used(self, used: UsedWeight | None) -> None:
        """At start: the weight this scale's last pack took (from its recorded job), so a parcel
        still on the scale after a restart is not taken for the next order. Only a reader that
        has served no pack yet takes it; None (no such job) just marks the reader as told."""
        with self._changed:
            if not self.remembered and self._used is None and used is not None:
                self._used, self._emptied = used, False
            self.remembered = True

    def used(self) -> UsedWeight | None:
        """The weight the last pack took, and for which parcel of which order (None before the first)."""
        return self._used

    def _claim_locked(self, found: WeightReading, order_ref: str, parcel: int) -> WeightReading:
        claim = UsedWeight(found.grams, order_ref, parcel)
        if self._used is None or (self._used.order_ref, self._used.parcel) != (order_ref, parcel):
            self._before_claim = (self._used, self._emptied)  # not the same parcel again
        self._used, self._emptied = claim, False
        return found

    def take_parcel_weight(
        self, order_ref: str, max_age_s: float = 1.0, *, parcel: int = 1
    ) -> WeightReading | None:
        """Claim the weight for parcel `parcel` of `order_ref` if there is one now (microseconds),
        else None."""
        with self._changed:
            found = self._parcel_locked(max_age_s, order_ref, parcel)
            return self._claim_locked(found, order_ref, parcel) if found is not None else None

    def wait_parcel_weight(
        self,
        order_ref: str,
        timeout_s: float,
        *,
        parcel: int = 1,
        where: str = "",
        max_age_s: float = 1.0,
    ) -> WeightReading:
        """Claim the next weight for parcel `parcel` of `order_ref`, waiting up to `timeout_s`.

        ScaleError when none came: `scale_weight_used` (the weight on the scale was already
        used), `scale_empty`, or why the scale gives no stable weight. `where` names the
        station in the message ("at S1").
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = self._parcel_locked(max_age_s, order_ref, parcel)
                if found is not None:
                    return self._claim_locked(found, order_ref, parcel)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            stable = self._stable_locked(max_age_s)
            used = self._used
        scale = f"the scale {where}".rstrip() if where else f"the {self._name}"
        if stable is not None and stable.grams < self._empty_below_g:
            raise ScaleError(
                f"put the parcel for order {order_ref} on {scale}: it reads {stable.grams} g, "
                "as if nothing is on it; then scan again",
                code="scale_empty",
                params={"order_ref": order_ref, "parcel": parcel, "grams": stable.grams},
            )
        if stable is not None and used is not None:
            this = (
                f"parcel {parcel} of order {order_ref}" if parcel > 1 else f"the parcel for order {order_ref}"
            )
            used_for = f"parcel {used.parcel} of order" if used.order_ref == order_ref else "order"
            raise ScaleError(
                f"put {this} on {scale}: the weight it shows, {stable.grams:,} g, was already used "
                f"for {used_for} {used.order_ref}. If this parcel is already on it, lift it off and "
                "put it back, then scan again",
                code="scale_weight_used",
                params={
                    "order_ref": order_ref,
                    "parcel": parcel,
                    "grams": stable.grams,
                    "used_for": used.order_ref,
                    "used_parcel": used.parcel,
                },
            )
        raise self._no_stable_weight(timeout_s)

    def give_back(self, order_ref: str, parcel: int = 1) -> None:
        """Undo the claim of parcel `parcel` of `order_ref` (its pack recorded no job), so the
        weight can be used again."""
        with self._changed:
            if self._used is not None and (self._used.order_ref, self._used.parcel) == (order_ref, parcel):
                self._used, self._emptied = self._before_claim
                self._before_claim = (None, True)
                self._changed.notify_all()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread (once; again only if it died)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._set_state("starting", f"the {self._name} is being opened")
        name = f"scale-reader {self.config.port}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and release the port; pending zero/tare calls fail."""
        thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)
        self._fail_commands(ScaleError(f"the {self._name} reader was stopped", code="scale_not_answering"))
        with self._changed:
            self._history.clear()
        self._set_state("stopped", f"the {self._name} is not being read")

    def __enter__(self) -> ScaleReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- commands ----------------------------------------------------------------------------

    def zero(self) -> None:
        """Zero the scale through the reader thread; ScaleError if the scale refuses."""
        self._command("zero")

    def tare(self) -> None:
        """Tare the scale through the reader thread; ScaleError if the scale refuses."""
        self._command("tare")

    def _command(self, name: str) -> None:
        if self._thread is None:
            raise ScaleError(
                f"the {self._name} is not being read: restart the agent", code="scale_not_answering"
            )
        done: Future[None] = Future()
        self._commands.append((name, done))
        self._wake.set()
        try:
            done.result(self._command_timeout_s)
        except FutureTimeout as exc:
            raise ScaleError(
                f"the {self._name} did not {name} within {self._command_timeout_s:g} s: "
                "check that it is on and connected",
                code="scale_not_answering",
            ) from exc

    def _fail_commands(self, error: ScaleError) -> None:
        while self._commands:
            _, done = self._commands.popleft()
            if not done.done():
                done.set_exception(error)

    # -- the thread --------------------------------------------------------------------------

    def _set_state(self, state: str, message: str) -> None:
        with self._changed:
            if (state, message) != (self._state, self._message):
                if state != self._state:
                    log.info("%s: %s (%s)", self._name, state, message)
                self._state, self._message = state, message
            self._changed.notify_all()

    def _run(self) -> None:
        scale: Scale | None = None
        backoff = self._backoff_min
        garbled_in_a_row = 0
        while not self._stop.is_set():
            try:
                if scale is None:
                    scale = self._factory(self.config)
                    scale.open()
                    backoff = self._backoff_min
                self._run_commands(scale)
                try:
                    got = scale.read()
                except ScaleError as exc:
                    garbled_in_a_row = garbled_in_a_row + 1 if isinstance(exc, ScaleGarbledFrame) else 0
                    self._on_error(exc, garbled_in_a_row)
                    if isinstance(exc, ScalePortLost):
                        raise
                else:
                    garbled_in_a_row = 0
                    self._on_reading(got)
            except ScaleError as exc:
                # Opening failed or the port vanished: let go of it and try the same path again.
                self._on_error(exc, 0)
                if scale is not None:
                    scale.close()
                    scale = None
                self._fail_commands(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            except Exception as exc:  # the reader must outlive its own bugs
                log.exception("%s: reader error", self._name)
                self._set_state("error", f"the {self._name} reader failed ({exc!r}): it retries by itself")
                if scale is not None:
                    scale.close()
                    scale = None
                self._stop.wait(self._backoff_max)
                continue
            if self._wake.wait(self._poll_interval_s):
                self._wake.clear()
        if scale is not None:
            scale.close()

    def _run_commands(self, scale: Scale) -> None:
        while self._commands:
            name, done = self._commands.popleft()
            try:
                scale.zero() if name == "zero" else scale.tare()
            except ScaleError as exc:
                done.set_exception(exc)
                if isinstance(exc, ScalePortLost):
                    raise
            else:
                done.set_result(None)
            with self._changed:
                self._history.clear()  # weights from before the zero or tare are no longer right

    def _on_reading(self, got: WeightReading) -> None:
        with self._changed:
            self._history.append(got)
            self._latest = got
            self.readings_total += 1
            if abs(got.grams) < self._empty_below_g:
                self._emptied = True
        moving = "" if got.stable else " (moving)"
        self._set_state("ok", f"the {self._name} reads {got.grams} g{moving}")

    def _on_error(self, exc: ScaleError, garbled_in_a_row: int) -> None:
        garbled = isinstance(exc, ScaleGarbledFrame)
        if garbled:
            self.garbled_total += 1
            if garbled_in_a_row < _GARBLED_IN_A_ROW:
                return  # one bad frame among good ones is line noise; the next frame is clean
        # The scale answered and is fine, only the weight is not settled.
        moving = isinstance(exc, ScaleUnsettled)
        with self._changed:
            self._history.clear()
            if moving and self._latest is not None:
                # Protocols that only say "in motion" carry no weight: what the station shows
                # must stop calling the last weight stable.
                self._latest = WeightReading(self._latest.grams, False, time.monotonic())
        if moving:
            self._set_state("ok", exc.message)
            return
        state = _STATE_OF_CODE.get(exc.code, "garbled" if garbled else "error")
        self._set_state(state, exc.message)
