"""A real OMS webhook endpoint for tests: an HTTP(S) server on an ephemeral loopback port."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.webhooks.targets import ALLOW_PRIVATE_ENV

__all__ = ["Receiver", "receiver_fixture"]


class Receiver:
    """Records each POST; fails the first `fail` ones with 500, or answers `redirect_to` with a 302."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, host: str = "localhost") -> None:
        self.received: list[dict[str, Any]] = []
        self.fail = 0
        self.redirect_to: str | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    failing = receiver.fail > 0
                    receiver.fail -= 1 if failing else 0
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": body, "failed": failing, "path": self.path}
                    )
                    redirect = receiver.redirect_to
                if redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                else:
                    self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://{host}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The requests received, once there are at least `count` (or the deadline passed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(name="receiver")
def receiver_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver on loopback, which webhooks may reach only with the private-networks setting on."""
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    running = Receiver(host="127.0.0.1")
    yield running
    running.close()
