"""Socket helpers for tests of servers that run in the test's own process."""

from __future__ import annotations

import http.client
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


def assert_no_delayed_ack_wait(address: str) -> None:
    """The HTTP server at `address` (in this process) gives its accepted connections TCP_NODELAY,
    so no answer waits ~40 ms for the client's delayed ACK, and keeps them alive."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200
        client = connection.sock
        assert client is not None
        with server_side_of(client) as accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        # Keep-alive: the next request is answered on the same connection.
        connection.request("GET", "/healthz")
        second = connection.getresponse()
        second.read()
        assert second.status == 200
        assert connection.sock is client
    finally:
        connection.close()
