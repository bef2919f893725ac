"""What every printer language's parser keeps for one connection: unread bytes and the job begun.

A real printer reads a connection into its receive buffer and works through it; a parser here does
the same with `feed` and its own `next_event`. The job begun and not yet ended (a ZPL format from
`^XA`, an ESC/POS receipt up to its cut) is what a cut connection loses and what `~HS` reports as
a partial format.
"""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """One connection's unread bytes and the job in progress, shared by the ZPL and ESC/POS parsers."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        self._job: bytearray | None = None
        self.oversized_formats = 0

    @property
    def in_format(self) -> bool:
        """Whether a job has started and not yet ended: the `~HS` partial format flag."""
        return self._job is not None

    @property
    def pending_bytes(self) -> int:
        """Bytes received and not yet consumed, including the unfinished job."""
        partial = len(self._job) if self._job is not None else 0
        return len(self._buffer) - self._position + partial

    def feed(self, data: bytes) -> None:
        """Add bytes as they came off the socket."""
        # Consumed bytes are dropped only once they are half the buffer: one copy per many reads.
        if self._position and self._position > len(self._buffer) // 2:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data
