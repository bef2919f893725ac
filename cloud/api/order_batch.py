"""Reading an order batch off the wire with its work bounded before any order is built.

The body is read chunk by chunk (its byte size is capped while it arrives, by the API's body
limit). Parsing JSON multiplies its size: 32 MiB of `{"orders": [{},{},...]}` is eleven million
dicts, a gigabyte. So each chunk is counted as it arrives, at C speed, for an upper bound on the
JSON values it can hold: every value but the outermost is an array's first element (after `[`),
a later element (after `,`) or an object member's value (after `:`). While the bound stays under
`MAX_JSON_VALUES`, parsing the whole body costs at most about a hundred megabytes and the fast
parser takes it as before (counting costs ~4 ms for 10,000 orders). Once it passes (many values,
or those characters inside strings), the rest is checked exactly as it streams in, with a
streaming parser (ijson, C backend) that builds nothing: it counts orders, values and depth, and
refuses the batch at the first limit, while the body is still arriving.

Across requests, `BUFFERS` caps the ingest bodies held in memory at once (MAX_BUFFERED_BYTES:
past it a batch is refused `503 server_busy` while it arrives, retry in a moment), and
`parsing()` lets MAX_PARSING batches be parsed and stored at once, so many hostile bodies in
parallel cost no more than a few.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ijson

from cloud.orders.ingest import MAX_ORDERS_PER_CALL
from dockside.errors import DocksideError, InputError

__all__ = [
    "BUFFERS",
    "MAX_BUFFERED_BYTES",
    "MAX_DEPTH",
    "MAX_JSON_VALUES",
    "MAX_PARSING",
    "BatchScan",
    "BatchTooComplex",
    "BodyBuffers",
    "BodyShare",
    "InvalidJson",
    "ServerBusy",
    "parsing",
]

# 10,000 orders of up to ~100 values each (an order with a dozen lines and its addresses);
# parsed, a million values stay within about 100 MB.
MAX_JSON_VALUES = 1_000_000
# An order is four levels deep ({"orders": [{"lines": [{...}]}]}): deeper is not an order batch.
MAX_DEPTH = 16

# Two 32 MiB batches, or about eighteen of the usual 3.5 MB ones, arriving at the same time: with
# their parsing, what keeps the cloud under 300 MB resident while hostile batches arrive together.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
# A parsed batch may hold up to ~100 MB of objects (MAX_JSON_VALUES); SQLite stores one at a time anyway.
MAX_PARSING = 2

# What the exact count is sent at a time (a request's chunks are about this size too).
_EXACT_SLICE = 64 * 1024
_SCALARS = frozenset({"null", "boolean", "integer", "double", "number", "string"})
_OPENS = frozenset({"start_map", "start_array"})
_CLOSES = frozenset({"end_map", "end_array"})
_ENVELOPE = 'send {"orders": [...]}'


class InvalidJson(InputError):
    """The request body is not JSON at all."""

    code = "invalid_json"
    http_status = 400


class BatchTooComplex(InputError):
    """A batch holding more JSON values than one call may parse."""

    code = "batch_too_large"
    http_status = 413


class ServerBusy(DocksideError):
    """Too many order batches are arriving at once: retrying in a moment works."""

    code = "server_busy"
    http_status = 503


class BodyBuffers:
    """The bytes of ingest bodies this process holds in memory, across all requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._lock = threading.Lock()  # in-process test clouds run one event loop per thread

    @contextmanager
    def holding(self) -> Iterator[BodyShare]:
        """A request's share: grows with `add`, given back when the block ends."""
        share = BodyShare(self)
        try:
            yield share
        finally:
            with self._lock:
                self.held -= share.bytes

    def _take(self, share: BodyShare, size: int) -> None:
        with self._lock:
            if self.held + size > self.limit:
                raise ServerBusy(
                    f"the cloud is receiving {self.limit // (1024 * 1024)} MiB of order batches at once: "
                    "send this batch again in a few seconds"
                )
            self.held += size
            share.bytes += size


class BodyShare:
    def __init__(self, buffers: BodyBuffers) -> None:
        self.buffers = buffers
        self.bytes = 0

    def add(self, size: int) -> None:
        """Count `size` more bytes of this request's body; ServerBusy if the process has no room."""
        self.buffers._take(self, size)


BUFFERS = BodyBuffers(MAX_BUFFERED_BYTES)
_PARSING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def parsing() -> asyncio.Semaphore:
    """The event loop's gate for batches being parsed and stored (MAX_PARSING at once)."""
    loop = asyncio.get_running_loop()
    gate = _PARSING.get(loop)
    if gate is None:
        gate = _PARSING[loop] = asyncio.Semaphore(MAX_PARSING)
    return gate


def _too_many_orders() -> InputError:
    return InputError(
        f"a call takes at most {MAX_ORDERS_PER_CALL:,} orders (this one has more): "
        "split the batch into several calls",
        code="too_many_orders",
    )


class BatchScan:
    """Counts what an ingest body holds as it arrives; raises at the first limit it passes."""

    def __init__(self) -> None:
        self.bound = 1
        self._exact: _ExactCount | None = None

    @property
    def exact(self) -> bool:
        """Whether the body is being checked event by event (the bound passed MAX_JSON_VALUES)."""
        return self._exact is not None

    def feed(self, chunk: bytes, seen: bytes | bytearray) -> None:
        """Take the next chunk; `seen` is the whole body so far, this chunk included."""
        if self._exact is not None:
            self._exact.feed(chunk)
            return
        self.bound += chunk.count(b",") + chunk.count(b":") + chunk.count(b"[")
        if self.bound > MAX_JSON_VALUES:
            self._exact = _ExactCount()
            # In slices: ijson lists every event of what it is sent before they are counted, and
            # the ~3 MB seen so far may be a million `{}` (two million events, ~150 MB at once).
            view = memoryview(seen)
            for start in range(0, len(view), _EXACT_SLICE):
                self._exact.feed(bytes(view[start : start + _EXACT_SLICE]))

    def finish(self) -> None:
        """The body is complete: in exact mode, check that it ended as one whole JSON document."""
        if self._exact is not None:
            self._exact.finish()


class _ExactCount:
    """ijson's events for the body so far: orders, values and depth, nothing built."""

    def __init__(self) -> None:
        self._events: Any = ijson.sendable_list()
        self._parser: Any = ijson.basic_parse_coro(self._events, use_float=True)
        self.values = 0
        self.orders = 0
        self._depth = 0
        self._in_orders = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return  # ijson takes an empty chunk as the end of the document: finish() says that
        try:
            self._parser.send(chunk)
        except ijson.JSONError as exc:
            raise InvalidJson(f"the body is not valid JSON ({_first_line(exc)}): {_ENVELOPE}") from None
        self._count()

    def finish(self) -> None:
        try:
            self._parser.close()
        except ijson.JSONError as exc:
            raise InvalidJson(f"the body is not valid JSON ({_first_line(exc)}): {_ENVELOPE}") from None
        self._count()

    def _count(self) -> None:
        for event, value in self._events:
            if event == "map_key":
                if self._depth == 1 and value != "orders":
                    raise InputError(f"the body has a field {str(value)[:40]!r}: {_ENVELOPE}")
                continue
            if event in _CLOSES:
                self._depth -= 1
                if self._depth == 1:
                    self._in_orders = False
                continue
            self.values += 1
            if self.values > MAX_JSON_VALUES:
                raise BatchTooComplex(
                    f"the batch holds more than {MAX_JSON_VALUES:,} JSON values: send fewer orders "
                    "per call (or fewer lines per order)"
                )
            if self._depth == 0 and event != "start_map":
                raise InputError(f"the body is not a JSON object: {_ENVELOPE}")
            if self._in_orders and self._depth == 2:
                self.orders += 1
                if self.orders > MAX_ORDERS_PER_CALL:
                    raise _too_many_orders()
            if event in _OPENS:
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise InputError(
                        f"the body is nested deeper than {MAX_DEPTH} levels, which no order is: {_ENVELOPE}",
                        code="too_deep",
                    )
                if self._depth == 2 and event == "start_array":
                    self._in_orders = True
            elif event in _SCALARS and self._depth == 0:
                raise InputError(f"the body is not a JSON object: {_ENVELOPE}")
        del self._events[:]


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
