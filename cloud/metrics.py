"""The cloud's Prometheus metrics, served at /metrics (one set per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "AGENTS_ENROLLED",
    "EVENTS",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "ORDERS_CHANGED",
    "ORDERS_INGESTED",
    "RPC_FAILURES",
    "WATCH_STREAMS",
]

HTTP_REQUESTS = Counter(
    "dockside_cloud_http_requests_total",
    "Admin API requests by route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "dockside_cloud_http_request_seconds",
    "Admin API request duration by route.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
ORDERS_INGESTED = Counter(
    "dockside_cloud_orders_ingested_total", "Orders in ingest calls by outcome.", ["outcome"]
)
ORDERS_CHANGED = Counter(
    "dockside_cloud_orders_changed_total", "Orders stored new or with new content by ingest."
)
AGENTS_ENROLLED = Counter("dockside_cloud_agents_enrolled_total", "Agents enrolled.")
WATCH_STREAMS = Gauge("dockside_cloud_watch_streams", "Watch streams open now.")
EVENTS = Counter("dockside_cloud_edge_events_total", "Edge events received by outcome.", ["outcome"])
RPC_FAILURES = Counter(
    "dockside_cloud_rpc_failures_total", "gRPC calls that failed, by RPC and status.", ["rpc", "status"]
)
