"""The agent's Prometheus metrics, on a registry of its own (one per agent, so tests can run many)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["AgentMetrics"]

# Pack latency buckets around the goal (p50 <= 1.5 ms through HTTP) and the slow cases
# (waiting for a scale to settle takes seconds).
_PACK_BUCKETS = (0.0002, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.05, 0.25, 1.0, 2.5, 5.0, 10.0)


class AgentMetrics:
    """Every metric the agent exports at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pack_seconds = Histogram(
            "dockside_pack_seconds",
            "Time from a pack request to its answer, inside the agent",
            ["outcome"],
            buckets=_PACK_BUCKETS,
            registry=r,
        )
        self.printer_send_seconds = Histogram(
            "dockside_printer_send_seconds",
            "Time for a printer lane to take a label's bytes (thread hop included)",
            buckets=_PACK_BUCKETS,
            registry=r,
        )
        self.print_failures = Counter(
            "dockside_print_failures", "Labels that did not print, by error code", ["reason"], registry=r
        )
        self.labels_printed = Counter(
            "dockside_labels_printed", "Labels handed to a printer", ["kind"], registry=r
        )
        self.outbox_depth = Gauge("dockside_outbox_depth", "Events waiting for the cloud", registry=r)
        self.dead_letters = Gauge(
            "dockside_dead_letters", "Events the cloud refused for good, kept for a person", registry=r
        )
        self.events_delivered = Counter(
            "dockside_outbox_events_delivered", "Events the cloud acknowledged", registry=r
        )
        self.events_rejected = Counter(
            "dockside_outbox_events_rejected", "Events the cloud refused for good", registry=r
        )
        self.changes_applied = Counter(
            "dockside_sync_changes_applied",
            "Live changes applied to the cache (outside snapshots)",
            registry=r,
        )
        self.changes_refused = Counter(
            "dockside_sync_changes_refused", "Changes whose body the agent could not use", registry=r
        )
        self.snapshots = Counter("dockside_sync_snapshots", "Snapshots swapped into the cache", registry=r)
        self.sync_online = Gauge("dockside_sync_online", "1 while the watch stream is up", registry=r)
        self.sync_revision = Gauge("dockside_sync_revision", "Last cloud revision applied", registry=r)
        self.sync_lag = Gauge(
            "dockside_sync_lag_revisions", "Revisions the cache is behind the cloud", registry=r
        )
        self.reconnects = Counter("dockside_sync_reconnects", "Watch streams that broke", registry=r)

    def bind_gauges(
        self,
        *,
        outbox_depth: Callable[[], float],
        dead_letters: Callable[[], float],
        online: Callable[[], float],
        revision: Callable[[], float],
        lag: Callable[[], float],
    ) -> None:
        """Read these gauges from the live agent at scrape time."""
        self.outbox_depth.set_function(outbox_depth)
        self.dead_letters.set_function(dead_letters)
        self.sync_online.set_function(online)
        self.sync_revision.set_function(revision)
        self.sync_lag.set_function(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
