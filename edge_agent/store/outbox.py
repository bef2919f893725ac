"""The outbox: facts for the cloud, written in the same transaction as their local effect.

`Outbox.record()` is called inside the caller's `store.atomic()` block, so an event exists if
and only if its effect does. The sender (`edge_agent.sync.outbox_sender`) reads it in sequence
order, deletes what the cloud acked and moves what it refused to `dead_letters`. Offline, the
outbox grows on disk and drops nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from uuid6 import uuid7

from dockside.sync import EventKind
from edge_agent.store.database import Store, now_ms

__all__ = ["Outbox", "OutboxEvent", "Rejection", "new_event_id"]


def new_event_id() -> str:
    """A new, globally unique event id: a time-ordered UUID (version 7, RFC 9562), so the
    outbox's event-id index and the cloud's grow at their end instead of at random pages
    (a drain after an outage deletes and inserts thousands at once)."""
    return str(uuid7())


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One queued fact, as the sender reads it."""

    seq: int
    event_id: str
    kind: str
    order_ref: str
    station: str
    occurred_at_ms: int
    body: str  # JSON object


@dataclass(frozen=True, slots=True)
class Rejection:
    """The cloud's reason for never accepting an event."""

    event_id: str
    code: str
    message: str


class Outbox:
    """Writing, reading and settling outbox events on one store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._listeners: list[Callable[[], None]] = []

    def on_record(self, listener: Callable[[], None]) -> None:
        """Call `listener` after events are recorded (the sender wakes up)."""
        self._listeners.append(listener)

    def record(
        self,
        kind: EventKind,
        body: Mapping[str, Any],
        *,
        order_ref: str = "",
        station: str = "",
        occurred_at_ms: int | None = None,
    ) -> str:
        """Queue an event; call inside the transaction of its local effect. Returns its event id."""
        event_id = new_event_id()
        self._store.conn.execute(
            "INSERT INTO outbox (event_id, kind, order_ref, station, occurred_at_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                event_id,
                kind.value,
                order_ref,
                station,
                now_ms() if occurred_at_ms is None else occurred_at_ms,
                json.dumps(body, separators=(",", ":")),
            ),
        )
        return event_id

    def record_many(
        self, kinds: Sequence[EventKind], body: Mapping[str, Any], *, order_ref: str = "", station: str = ""
    ) -> list[str]:
        """Queue one event of each kind with the same body (one statement); returns their ids."""
        text = json.dumps(body, separators=(",", ":"))
        at = now_ms()
        rows = [(new_event_id(), kind.value, order_ref, station, at, text) for kind in kinds]
        self._store.conn.executemany(
            "INSERT INTO outbox (event_id, kind, order_ref, station, occurred_at_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return [row[0] for row in rows]

    def notify(self) -> None:
        """Tell the listeners that new events are committed (call after the transaction)."""
        for listener in self._listeners:
            listener()

    def peek(self, limit: int) -> list[OutboxEvent]:
        """The oldest `limit` events, in sequence order."""
        rows = self._store.conn.execute(
            "SELECT seq, event_id, kind, order_ref, station, occurred_at_ms, body "
            "FROM outbox ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxEvent(*row) for row in rows]

    def settle(self, acked: Sequence[str], rejected: Sequence[Rejection]) -> None:
        """In one transaction: forget acked events, move rejected ones to dead letters."""
        conn = self._store.conn
        with self._store.atomic():
            for chunk in _chunks(acked, 500):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM outbox WHERE event_id IN ({marks})", chunk)  # noqa: S608
            at = now_ms()
            for rejection in rejected:
                conn.execute(
                    "INSERT OR IGNORE INTO dead_letters (seq, event_id, kind, order_ref, station, "
                    "occurred_at_ms, body, code, message, dead_at_ms) "
                    "SELECT seq, event_id, kind, order_ref, station, occurred_at_ms, body, ?, ?, ? "
                    "FROM outbox WHERE event_id = ?",
                    (rejection.code, rejection.message, at, rejection.event_id),
                )
                conn.execute("DELETE FROM outbox WHERE event_id = ?", (rejection.event_id,))

    def depth(self) -> int:
        """How many events wait for the cloud."""
        return int(self._store.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def dead_letter_count(self) -> int:
        return int(self._store.conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
