"""Structured logs for both sides: one JSON object a line, with the ids that tie a line to a parcel.

`JsonFormatter` writes time, level, logger and message, plus the ids a log call passes with
`extra=` (order_ref, job_id, station, request_id, agent_id, warehouse, printer, incident) or that
are bound for the current task with `log_context(...)`. `SecretRedactor` is a handler filter
that masks anything shaped like a Dockside secret (API tokens `dsk_`, enrollment tokens `dse_`,
agent credentials `dsa_`, and any `Bearer ...` value) in the message, its arguments and the
exception text, so a careless log call cannot leak one. `configure_logging` puts both on stderr.

A long-running agent logs in the background (`background=True`): a log call only queues the
record, with its message merged and its bound ids captured, and a thread formats, masks and
writes it. A pack then never waits for the log sink (a write to journald or a pipe that is slow
or full), and a line costs the pack path a few microseconds instead of a formatted write. The
queue is drained when the process exits normally.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import json
import logging
import logging.handlers
import queue
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "SecretRedactor", "configure_logging", "log_context", "redact"]

CONTEXT_FIELDS = (
    "order_ref",
    "job_id",
    "station",
    "request_id",
    "agent_id",
    "warehouse",
    "printer",
    "incident",
)
_SECRET = re.compile(r"\b(ds[kea]_)[A-Za-z0-9_\-]{8,}|(?i:\bbearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "dockside_log_context", default=None
)
_BOUND = "dockside_bound_ids"  # a queued record's ids bound with log_context, captured at the call


def redact(text: str) -> str:
    """`text` with every secret-shaped value replaced by its kind and `***`."""

    def mask(match: re.Match[str]) -> str:
        prefix = match.group(1)
        return f"{prefix}***" if prefix else "Bearer ***"

    return _SECRET.sub(mask, text)


@contextlib.contextmanager
def log_context(**ids: str) -> Iterator[None]:
    """Bind ids (e.g. order_ref, job_id) to every log line of the current task inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class SecretRedactor(logging.Filter):
    """Masks secrets in a record before any handler formats it (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message and the bound ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = record.__dict__.get(_BOUND, None)
        entry.update((bound if bound is not None else _context.get()) or {})
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class _Enqueue(logging.handlers.QueueHandler):
    """Queues a record for the writer thread, as it reads at the call: message merged, ids bound."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The writer formats later: merge the arguments now (they may change meanwhile) and keep
        # the ids bound to the calling task, which the writer thread cannot see.
        record.msg, record.args = record.getMessage(), None
        record.__dict__[_BOUND] = _context.get()
        return record


def configure_logging(
    level: str = "info", fmt: str = "text", stream: TextIO | None = None, *, background: bool = False
) -> logging.Handler:
    """Log to `stream` (stderr) at `level`, as "text" or "json", with secrets masked; returns the
    handler that writes. With `background`, a thread writes and a log call only queues the line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(SecretRedactor())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not background:
        logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
        return handler
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(lines, handler)
    logging.basicConfig(level=level.upper(), handlers=[_Enqueue(lines)], force=True)
    writer.start()
    atexit.register(writer.stop)  # writes what is still queued, then ends the thread
    return handler
