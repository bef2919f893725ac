"""The outbox sender: delivers queued events to the cloud in batches, at least once, in order.

It sleeps while the outbox is empty and wakes the moment a pack commits new events, then lingers
a few milliseconds so a burst of packs travels as one batch (one RPC and one cloud transaction
instead of one per pack, which the packs on the same two cores would feel). Each batch
goes out with PushEvents; what the cloud acks is deleted, what it refuses for good is moved to
dead letters for a person, and anything else stays for the next attempt. A failed delivery is
retried with backoff; the cloud dedupes by event id, so a batch sent twice has one effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dockside.errors import SyncError
from dockside.v1 import sync_pb2 as pb
from edge_agent.metrics import AgentMetrics
from edge_agent.store.outbox import Outbox, OutboxEvent, Rejection
from edge_agent.sync.backoff import Backoff
from edge_agent.sync.link import CloudLink
from edge_agent.sync.transport import SyncTransport

__all__ = ["DEFAULT_BATCH_SIZE", "OutboxSender", "to_wire"]

log = logging.getLogger(__name__)

# Large enough that a long outage drains in few round trips (each batch is one cloud
# transaction); the byte budget keeps a batch of large bodies under the cloud's message limit.
DEFAULT_BATCH_SIZE = 2_000
MAX_BATCH_BYTES = 3 * 1024 * 1024
DEFAULT_LINGER_S = 0.01
# Offline, the outbox only grows (bounded by the disk); past this depth every retry says so.
WARN_DEPTH = 10_000


def to_wire(event: OutboxEvent) -> pb.EdgeEvent:
    return pb.EdgeEvent(
        event_id=event.event_id,
        kind=event.kind,
        order_ref=event.order_ref,
        station=event.station,
        occurred_at_ms=event.occurred_at_ms,
        body=event.body.encode(),
        sequence=event.seq,
    )


class OutboxSender:
    """Drains the outbox into the cloud for as long as it runs."""

    def __init__(
        self,
        outbox: Outbox,
        transport: SyncTransport,
        link: CloudLink,
        metrics: AgentMetrics,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger_s: float = DEFAULT_LINGER_S,
        backoff: Backoff | None = None,
    ) -> None:
        self._outbox = outbox
        self._transport = transport
        self._link = link
        self._metrics = metrics
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()
        outbox.on_record(self.wake)

    def wake(self) -> None:
        """New events are committed: send them now (call on the event loop's thread)."""
        self._wake.set()

    def cloud_is_back(self) -> None:
        """The cloud answers again: cut a backoff wait short and start afresh."""
        self.backoff.reset()
        self._retry_now.set()
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            self._wake.clear()
            try:
                sent = await self.send_batch()
            except SyncError as exc:
                await self._back_off(f"delivering events failed: {exc.message}")
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("the outbox sender failed; retrying")
                await self._back_off(f"the outbox sender failed: {exc!r}")
                continue
            if sent is None:
                await self._wake.wait()
                if self.linger_s > 0:
                    await asyncio.sleep(self.linger_s)

    async def send_batch(self) -> int | None:
        """Deliver the oldest batch; how many events it settled, or None if the outbox is empty.

        Raises SyncError when the batch was not delivered (it stays queued).
        """
        batch = _within_budget(self._outbox.peek(self.batch_size))
        if not batch:
            return None
        answer = await self._transport.push_events([to_wire(event) for event in batch])
        self._link.contact()
        queued = {event.event_id for event in batch}
        acked = [event_id for event_id in answer.acked if event_id in queued]
        rejected = [
            Rejection(item.event_id, item.code or "rejected", item.message or "refused by the cloud")
            for item in answer.rejected
            if item.event_id in queued
        ]
        if not acked and not rejected:
            raise SyncError(
                f"the cloud settled none of {len(batch)} events: it will be asked again",
                code="events_unsettled",
            )
        self._outbox.settle(acked, rejected)
        self.backoff.reset()
        self._metrics.events_delivered.inc(len(acked))
        if rejected:
            self._metrics.events_rejected.inc(len(rejected))
            for rejection in rejected:
                log.error(
                    "the cloud refused event %s for good (%s: %s); kept as a dead letter",
                    rejection.event_id,
                    rejection.code,
                    rejection.message,
                )
        return len(acked) + len(rejected)

    async def _back_off(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        depth = self._outbox.depth()
        if depth >= WARN_DEPTH:
            log.warning(
                "%s; %d events wait in the outbox (kept on disk, none dropped); retrying in %.2f s",
                reason,
                depth,
                delay,
            )
        else:
            log.info("%s; retrying in %.2f s", reason, delay)
        self._retry_now.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), delay)


def _within_budget(batch: list[OutboxEvent]) -> list[OutboxEvent]:
    """The oldest events of `batch` whose bodies fit MAX_BATCH_BYTES (at least one, in order)."""
    total = 0
    for index, event in enumerate(batch):
        total += len(event.body.encode()) + len(event.order_ref) + 128
        if total > MAX_BATCH_BYTES and index > 0:
            return batch[:index]
    return batch
