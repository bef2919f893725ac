"""Which sent labels a printer's status answer confirms: the bookkeeping of confirmed printing.

A label is `sent` when its bytes went out and `printed` when the printer says so. A Zebra answers
`~HS` at once (tilde commands jump its queue) with the formats still in its receive buffer and its
fault flags; it reads its connection in order, so every label written before the query is in its
buffer or already printed, and it prints them first in, first out. So if `n` labels were sent
before a query (and not confirmed yet) and the answer says `k` formats wait, the first `n - k` of
them printed, and the last `k` may still be waiting. Formats from other senders can only make
`k` larger, so the count errs towards "not confirmed yet", never towards a false "printed".

With the same answer:
- no fault: the waiting ones print in their own time, a later answer confirms them;
- a fault (paper out, head open, paused...): the waiting ones are `held` in the printer with the
  fault's fix; they print by themselves once it is fixed, and a later answer confirms them;
- no answer (silent, garbled, offline): nothing is confirmed; a label sent longer ago than the
  confirmation timeout is given up as `unconfirmable` (it stays `sent`, and the packer is told
  to check that it came out).

An ESC/POS printer says nothing of its buffer (`formats_in_buffer` is None): its real-time status
after the cut either is clear (every label sent before it printed) or names a fault (they are
held). A printer that cannot be read at all (a spool file) never confirms: its labels are
unconfirmable at once (`SentLedger.answer` with `can_confirm=False`).

Entries carry a sequence number, so an answer applies to what was sent before its own query even
when another poll (the scheduler's) answered in between.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .printer import PrinterStatus

__all__ = ["Confirmation", "SentLedger"]

# Faults that mean the printer did not answer: they say nothing about its buffer.
SILENT_FAULTS = frozenset({"offline", "no_answer"})


@dataclass(slots=True)
class _Sent:
    seq: int
    job_id: str
    sent_at: float  # time.monotonic() of the send
    held: bool = False  # already reported held in the printer (reported once per fault)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What one status answer settled: job ids printed, newly held in the printer, given up on."""

    printed: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    unconfirmable: tuple[str, ...] = ()
    faults: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.printed or self.held or self.unconfirmable)


class SentLedger:
    """The labels a printer was sent and has not confirmed yet, oldest first (one per printer lane)."""

    def __init__(self, timeout_s: float = 30.0, limit: int = 10_000) -> None:
        if not timeout_s > 0:
            raise ValueError(f"the confirmation timeout must be above 0 seconds, not {timeout_s!r}")
        self.timeout_s = timeout_s
        self._limit = limit
        self._entries: deque[_Sent] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def all_held(self) -> bool:
        """Whether every label still waiting is held in a faulted printer (poll it less often)."""
        return bool(self._entries) and all(entry.held for entry in self._entries)

    def sent(self, job_id: str, now: float) -> list[str]:
        """Record a label that went out; the job ids given up on to stay within the limit (oldest)."""
        self._seq += 1
        self._entries.append(_Sent(self._seq, job_id, now))
        dropped = []
        while len(self._entries) > self._limit:
            dropped.append(self._entries.popleft().job_id)
        return dropped

    def mark(self) -> int:
        """Call right before the status query is written: the newest label it can speak for."""
        return self._seq

    def forget(self, job_ids: list[str] | tuple[str, ...]) -> None:
        """Stop tracking jobs settled elsewhere (put in doubt by a dropped connection)."""
        gone = set(job_ids)
        self._entries = deque(entry for entry in self._entries if entry.job_id not in gone)

    def answer(
        self, mark: int, status: PrinterStatus | None, now: float, *, can_confirm: bool = True
    ) -> Confirmation:
        """Settle the labels sent up to `mark` by `status` (None: the printer did not answer).

        `now` is time.monotonic(); labels sent more than `timeout_s` before it and still not
        confirmed (no answer, or an answer that keeps them waiting without a fault) are given up.
        """
        if not can_confirm:
            gone = tuple(entry.job_id for entry in self._entries if entry.seq <= mark)
            self.forget(gone)
            return Confirmation(unconfirmable=gone)
        asked = [entry for entry in self._entries if entry.seq <= mark]
        silent = status is None or bool(SILENT_FAULTS & status.faults)
        printed: list[_Sent] = []
        held: list[_Sent] = []
        if not silent and asked:
            assert status is not None
            waiting = status.formats_in_buffer
            if waiting is None:  # it does not count its buffer: clear means printed
                waiting = 0 if status.ready else len(asked)
            done = max(0, len(asked) - max(0, waiting))
            printed = asked[:done]
            if not status.ready:
                held = [entry for entry in asked[done:] if not entry.held]
                for entry in held:
                    entry.held = True
            else:
                for entry in asked[done:]:
                    entry.held = False  # the fault is fixed: it prints in its own time
        settled = {entry.seq for entry in printed}
        late = [
            entry
            for entry in asked
            if entry.seq not in settled and not entry.held and now - entry.sent_at > self.timeout_s
        ]
        settled |= {entry.seq for entry in late}
        if settled:
            self._entries = deque(entry for entry in self._entries if entry.seq not in settled)
        return Confirmation(
            printed=tuple(entry.job_id for entry in printed),
            held=tuple(entry.job_id for entry in held),
            unconfirmable=tuple(entry.job_id for entry in late),
            faults=frozenset() if status is None else status.faults,
        )
