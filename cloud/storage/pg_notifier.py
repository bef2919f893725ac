"""Wakes Watch streams on every replica that shares one PostgreSQL: LISTEN/NOTIFY as a signal.

    notifier = PostgresRevisionNotifier(dsn, channels, revocations)
    notifier.start()
    notifier.advanced(42)     # local streams wake now; other replicas within a NOTIFY round trip

NOTIFY takes a database-wide lock at commit, so writers never send one themselves: `advanced`
only records the highest committed revision, and one sender thread sends it with a single
NOTIFY, coalescing every commit that happened while the previous NOTIFY was on its way. The
payload is just "the log has reached revision N"; streams read the rows from the table as always.

One listening connection per replica feeds the in-process notifier. It also polls the clock row
every `poll_s` as a safety net (a NOTIFY lost while the connection was down, or a write made by
a process without this notifier). Revocations travel on a second channel (sent by the revoking
transaction itself, so they arrive only if it commits) and end the agent's streams here too.

Channel names include the schema, so test schemas (or tenants' schemas) in one database do not
wake each other with revisions that mean nothing to them.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from cloud.storage.notifier import AgentRevocations, LocalRevisionNotifier

__all__ = ["NotifyChannels", "PostgresRevisionNotifier", "channels_for_schema"]

log = logging.getLogger(__name__)

_RECONNECT_S = 1.0


@dataclass(frozen=True, slots=True)
class NotifyChannels:
    """The two channel names one schema's replicas share."""

    revision: str
    revoked: str


def channels_for_schema(schema_name: str) -> NotifyChannels:
    """The channels for `schema_name` (PostgreSQL identifiers hold at most 63 bytes)."""
    return NotifyChannels(
        revision=f"dockside_revision_{schema_name}"[:63], revoked=f"dockside_revoked_{schema_name}"[:63]
    )


class PostgresRevisionNotifier:
    """A `RevisionNotifier` for several replicas: local wake-ups plus LISTEN/NOTIFY between them."""

    def __init__(
        self,
        dsn: str,
        channels: NotifyChannels,
        revocations: AgentRevocations,
        *,
        revision: int = 0,
        poll_s: float = 1.0,
    ) -> None:
        self._dsn = dsn  # holds the password: never logged
        self.channels = channels
        self._revocations = revocations
        self._local = LocalRevisionNotifier(revision)
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._pending = threading.Condition()
        self._to_send = 0
        self._sent = 0
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()
        # `close` writes a byte here so the listening thread, waiting on its connection, ends at once.
        self._wake_reader, self._wake_writer = socket.socketpair()

    def start(self) -> None:
        """Start the listening and sending threads; returns once LISTEN is in place (or failed once)."""
        for target, name in ((self._listen, "pg-listen"), (self._send, "pg-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._listening.wait(timeout=10)

    @property
    def latest(self) -> int:
        return self._local.latest

    @property
    def closed(self) -> bool:
        return self._local.closed

    def advanced(self, revision: int) -> None:
        self._local.advanced(revision)
        with self._pending:
            if revision > self._to_send:
                self._to_send = revision
                self._pending.notify()

    async def wait_past(self, revision: int, seconds: float) -> bool:
        return await self._local.wait_past(revision, seconds)

    def close(self) -> None:
        if self._stopping.is_set():
            return  # closed before: the threads have ended and the wake-up sockets are closed
        self._stopping.set()
        with self._pending:
            self._pending.notify()
        self._local.close()
        self._wake_writer.send(b"\0")
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._wake_reader.close()
        self._wake_writer.close()

    def _send(self) -> None:
        """Send one NOTIFY per batch of commits: the highest revision not yet announced."""
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stopping.is_set():
            with self._pending:
                while self._to_send <= self._sent and not self._stopping.is_set():
                    self._pending.wait()
                revision = self._to_send
            if self._stopping.is_set():
                break
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._dsn, autocommit=True)
                conn.execute("SELECT pg_notify(%s, %s)", (self.channels.revision, str(revision)))
                self._sent = revision
            except psycopg.Error as exc:
                # Other replicas' polls still pick the revision up; try again shortly.
                log.warning("cannot NOTIFY other replicas (%s); retrying", type(exc).__name__)
                conn = None
                self._stopping.wait(_RECONNECT_S)
        if conn is not None:
            conn.close()

    def _listen(self) -> None:
        """Feed NOTIFYs (and a periodic read of the clock) into the local notifier until closed."""
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    for channel in (self.channels.revision, self.channels.revoked):
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._listening.set()
                    polled = 0.0
                    while not self._stopping.is_set():
                        if time.monotonic() - polled >= self._poll_s:
                            self._poll_clock(conn)
                            polled = time.monotonic()
                        # What has arrived (during the poll too), then sleep until more arrives,
                        # the next poll is due, or `close` wakes this thread.
                        for note in conn.notifies(timeout=0):
                            self._receive(note.channel, note.payload)
                        until_poll = max(0.0, self._poll_s - (time.monotonic() - polled))
                        select.select([conn.fileno(), self._wake_reader.fileno()], [], [], until_poll)
            except psycopg.Error as exc:
                log.warning("the LISTEN connection failed (%s); reconnecting", type(exc).__name__)
                self._listening.set()
                self._stopping.wait(_RECONNECT_S)

    def _receive(self, channel: str, payload: str) -> None:
        if channel == self.channels.revision:
            if payload.isdigit():
                self._local.advanced(int(payload))
        elif channel == self.channels.revoked:
            self._revocations.revoke(payload)

    def _poll_clock(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        row = conn.execute("SELECT revision FROM sync_clock WHERE id = 1").fetchone()
        if row is not None:
            self._local.advanced(int(str(row[0])))
