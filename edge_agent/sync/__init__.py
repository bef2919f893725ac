"""Keeping the agent and the cloud in step over the Sync service.

transport.py         SyncTransport: the small interface the engine talks through
grpc_transport.py    GrpcTransport: the real one (grpc.aio, bearer credential, keepalive)
memory_transport.py  MemoryTransport: an in-memory cloud for tests and dry runs
watch.py             Watcher: cloud -> cache (resume, apply+revision atomically, snapshots)
outbox_sender.py     OutboxSender: outbox -> cloud (batches, acks, dead letters, retries)
status_report.py     StatusReporter: the periodic ReportStatus
backoff.py           Backoff: capped exponential delays with full jitter
link.py              CloudLink: online or not, last contact, lag
"""

from edge_agent.sync.backoff import Backoff
from edge_agent.sync.grpc_transport import GrpcTransport
from edge_agent.sync.link import CloudLink
from edge_agent.sync.memory_transport import MemoryTransport
from edge_agent.sync.outbox_sender import OutboxSender
from edge_agent.sync.status_report import StatusReporter
from edge_agent.sync.transport import SyncTransport
from edge_agent.sync.watch import Watcher

__all__ = [
    "Backoff",
    "CloudLink",
    "GrpcTransport",
    "MemoryTransport",
    "OutboxSender",
    "StatusReporter",
    "SyncTransport",
    "Watcher",
]
