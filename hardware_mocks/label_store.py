"""The folder a mock printer writes its printed labels to, one file each, off the printing path.

Disks can take a millisecond to create a small file; written on the printer's event loop that
would stall every connection. A writer thread takes the files from a queue instead, in order, and
`close()` waits until every file is on disk.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

__all__ = ["LabelStore"]


class LabelStore:
    """Writes `0001.zpl`, `0002.zpl`, ... into a folder from a background thread."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix
        self.written = 0
        self.failures: list[str] = []
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"label-store-{folder.name}", daemon=True)
        self._thread.start()

    def path_for(self, index: int) -> Path:
        """Where the label with this index is (or will be) stored."""
        return self.folder / f"{index:04d}{self.suffix}"

    def put(self, index: int, raw: bytes) -> None:
        """Queue one label's bytes for writing."""
        with self._idle:
            self._pending += 1
        self._queue.put((index, raw))

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued label is written; False if that took longer than timeout_s."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            index, raw = item
            try:
                target = self.path_for(index)
                temporary = target.with_name(f".{target.name}.tmp")
                temporary.write_bytes(raw)
                # A reader never sees half a label: the name appears only when the bytes are there.
                os.replace(temporary, target)
                self.written += 1
            except OSError as exc:
                # A full or read-only disk must not stop the printer; status shows what failed.
                self.failures.append(f"{self.path_for(index)}: {exc}")
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
