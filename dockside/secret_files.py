"""Files that hold secrets are created readable by their owner only (0600), never widened later.

A file created with the default umask is world-readable (0644) from the moment it exists, so a
later chmod leaves a window and misses files other code creates beside it. `private_file` makes
the file with mode 0600 before anything writes to it; for a SQLite database that is enough for its
`-wal`, `-shm` and `-journal` too, which SQLite creates with the database file's own mode. A file
left 0644 by an older version is narrowed. On Windows the mode bits mean little; the data
directory's ACL is what protects it, so there these are no-ops.

`write_private` replaces a file's content atomically through a 0600 temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["SQLITE_COMPANIONS", "private_file", "write_private"]

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
_PRIVATE = 0o600


def private_file(path: Path, *, companions: tuple[str, ...] = ()) -> None:
    """Make `path` exist with mode 0600 (narrow it if it is wider), and any existing companions."""
    if os.name != "posix":
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    except FileExistsError:
        _narrow(path)
    except (FileNotFoundError, PermissionError):
        return  # no such folder, or not ours to write: opening the database says so
    else:
        os.close(descriptor)
    for suffix in companions:
        _narrow(path.with_name(path.name + suffix))


def _narrow(path: Path) -> None:
    # Another user's file (a shared database) is theirs to protect: leave its mode be.
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & 0o077:
            os.chmod(path, _PRIVATE)


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` (mode 0600) atomically: a reader sees the old or the new content."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates its file 0600 on POSIX.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
