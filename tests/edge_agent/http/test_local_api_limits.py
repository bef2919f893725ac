"""The agent's local API bounds its clients in time and number, like the cloud (dockside/http_limits.py).

A real agent on a real socket: a client that declares a body and sends nothing, or dribbles its
headers, is answered 408 and closed within the (shortened) deadline, and a packer's request is
served while such clients hold their connections; connections past the cap are answered 503.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.http.server import AGENT_MAX_CONNECTIONS, agent_http_limits
from edge_agent.sync import MemoryTransport
from tests.edge_agent.agent_harness import RunningAgent

DEADLINE_S = 1.0


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningAgent]:
    monkeypatch.setenv("DOCKSIDE_HTTP_HEADER_TIMEOUT_S", str(DEADLINE_S))
    monkeypatch.setenv("DOCKSIDE_HTTP_BODY_TIMEOUT_S", str(DEADLINE_S))
    monkeypatch.setenv("DOCKSIDE_HTTP_MAX_CONNECTIONS", "20")
    running = RunningAgent(tmp_path / "agent", MemoryTransport()).start()
    try:
        yield running
    finally:
        running.stop()


def _connect(agent: RunningAgent) -> socket.socket:
    host, port = agent.address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10 * DEADLINE_S)


def _answer(sock: socket.socket) -> bytes:
    """Everything the agent sends until it closes the connection (the socket timeout bounds it)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _first_refusal(socks: list[socket.socket], within_s: float) -> bytes:
    """The first answer a socket gets that is a 503 `server_busy`, waiting at most `within_s`."""
    deadline = time.monotonic() + within_s
    waiting = list(socks)
    while waiting and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(waiting, [], [], left)
        for sock in readable:
            waiting.remove(sock)
            answer = sock.recv(300)
            if answer.startswith(b"HTTP/1.1 503") and b"server_busy" in answer:
                return answer
    return b""


def test_the_agent_defaults_to_its_own_connection_cap() -> None:
    assert agent_http_limits({}).max_connections == AGENT_MAX_CONNECTIONS
    assert agent_http_limits({"DOCKSIDE_HTTP_MAX_CONNECTIONS": "7"}).max_connections == 7
    with pytest.raises(ValueError, match="DOCKSIDE_HTTP_BODY_TIMEOUT_S"):
        agent_http_limits({"DOCKSIDE_HTTP_BODY_TIMEOUT_S": "soon"})


def test_a_declared_body_that_never_comes_is_answered_408_and_closed(agent: RunningAgent) -> None:
    with _connect(agent) as sock:
        sock.sendall(
            b"POST /api/v1/pack HTTP/1.1\r\nHost: " + agent.address.encode() + b"\r\n"
            b"Authorization: Bearer " + agent.token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"body_timeout"' in answer.replace(b" ", b"")


def test_headers_dribbled_past_the_deadline_are_answered_408(agent: RunningAgent) -> None:
    with _connect(agent) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + agent.address.encode() + b"\r\nX-Slow: ")
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer


def test_stalled_clients_do_not_keep_a_packer_out_and_the_cap_holds(agent: RunningAgent) -> None:
    assert agent.http is not None
    stalled = [_connect(agent) for _ in range(10)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: ")
        assert agent.http.get("/api/v1/status").status_code == 200
        more = [_connect(agent) for _ in range(15)]
        try:
            assert _first_refusal(more, within_s=10), "connections past the cap of 20 were all admitted"
        finally:
            for sock in more:
                sock.close()
    finally:
        for sock in stalled:
            sock.close()
