"""Socket helpers for tests of servers that run in the test's own process."""

from __future__ import annotations

import os
import socket


def server_side_of(client: socket.socket) -> socket.socket:
    """The server's accepted socket at the other end of `client` (the server runs in this process);
    a duplicate, for reading its options: close it."""
    want = (client.getpeername(), client.getsockname())
    for fd in os.listdir("/proc/self/fd"):
        try:
            candidate = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue  # not a socket (or already closed)
        try:
            if (candidate.getsockname(), candidate.getpeername()) == want:
                return candidate
        except OSError:
            pass  # a listening or unconnected socket
        candidate.close()
    raise AssertionError(f"no accepted socket for the client at {client.getsockname()}")
