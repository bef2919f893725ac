"""Hostile input to the cloud's ingest and upload surfaces, against a real `dockside-cloud serve`.

Each case asserts the outcome: the status and error code a client gets, that a connection is
answered or closed before a generous deadline, that a normal client is served meanwhile, and
that the cloud's resident memory (read from /proc while the bodies arrive) stays under 300 MB.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.stack import Stack, running_stack, wait_for
from cloud.api.order_batch import MAX_BUFFERED_BYTES, MAX_JSON_VALUES
from cloud.fleet.releases import MAX_RELEASE_BYTES, PUBLIC_KEY_ENV, generate_release_key, sign_release

RSS_BOUND_MB = 300
# Far longer than any limit the test cloud runs with: an answer after this is no answer.
DEADLINE_S = 30.0
TIMEOUT_S = 5.0  # the test clouds' header and body read timeouts
MB = 1024 * 1024


@dataclass
class Clouds:
    stack: Stack
    token: str
    release_key: bytes
    no_key_http: str  # a second cloud on the same database, without a release key, max 64 connections
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def http(self) -> str:
        return str(self.stack.cloud.ready["http"])

    @property
    def pid(self) -> int:
        return self.stack.cloud.popen.pid

    def client(self, address: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://{address or self.http}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=DEADLINE_S * 2,
        )


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    private, public = generate_release_key()
    env = {
        PUBLIC_KEY_ENV: public,
        "DOCKSIDE_HTTP_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "DOCKSIDE_HTTP_BODY_TIMEOUT_S": str(TIMEOUT_S),
    }
    with running_stack(tmp_path_factory.mktemp("hostile"), env=env) as stack:
        stack.start_cloud()
        stack.admin_call("POST", "/api/v1/warehouses", {"code": "WH1", "name": "Hostile"})
        stack.env.pop(PUBLIC_KEY_ENV)
        stack.env["DOCKSIDE_HTTP_MAX_CONNECTIONS"] = "64"
        no_key = stack.spawn(
            "cloud-no-key",
            [
                "dockside-cloud",
                "serve",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
                "--database-url",
                stack.database_url,
            ],
        )
        yield Clouds(stack, stack.admin_token, private, str(no_key.ready["http"]))


class RssWatch:
    """The highest resident set size of a process, sampled from /proc while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError(f"no VmRSS for process {self.pid}")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.rss_mb())
            self._stop.wait(0.005)

    def __enter__(self) -> RssWatch:
        self.peak_mb = self.rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())


def _order(ref: str) -> dict[str, Any]:
    return {
        "order_ref": ref,
        "warehouse": "WH1",
        "ship_to": {
            "name": "Ada",
            "street": "1 Dock Rd",
            "city": "Springfield",
            "postal_code": "1",
            "country": "US",
        },
        "lines": [{"sku": "SKU-1", "qty": 1}],
    }


def _empty_objects(total_bytes: int, *, envelope: bool) -> bytes:
    """`{"orders": [{},{},...]}` (or the bare array) of about `total_bytes`."""
    head, tail = (b'{"orders": [', b"]}") if envelope else (b"[", b"]")
    count = (total_bytes - len(head) - len(tail) + 1) // 3
    return head + b",".join([b"{}"] * count) + tail


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _address(http: str) -> tuple[str, int]:
    host, _, port = http.rpartition(":")
    return host, int(port)


def _read_answer(sock: socket.socket, deadline: float) -> tuple[int | None, bytes]:
    """(status, whole reply) once the server answered and closed, or (None, b"") if it just closed."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            continue
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError(f"the server neither answered nor closed within {DEADLINE_S:.0f} s")
    if not received:
        return None, b""
    return int(received.split(b" ", 2)[1]), received


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    """One whole response (head and Content-Length body) on a connection that may stay open."""
    received = b""
    while time.monotonic() < deadline:
        head, separator, body = received.partition(b"\r\n\r\n")
        if separator:
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(body) >= length:
                return int(received.split(b" ", 2)[1]), received
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"the server closed before a whole response: {received[:200]!r}"
        received += chunk
    raise AssertionError(f"no whole response within {DEADLINE_S:.0f} s")


def _json_error(reply: bytes) -> str:
    return str(json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"])


def _raw_head(method: str, path: str, token: str, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: cloud\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


# -- order ingest: count and size bounded while the body is read --------------------------------


def test_32_mib_of_empty_orders_is_refused_while_the_clouds_memory_stays_bounded(clouds: Clouds) -> None:
    in_envelope = _empty_objects(32 * MB - 64, envelope=True)
    bare = _empty_objects(32 * MB - 64, envelope=False)
    with clouds.client() as client, RssWatch(clouds.pid) as rss:
        first = client.post(
            "/api/v1/orders", content=in_envelope, headers={"Content-Type": "application/json"}
        )
        second = client.post("/api/v1/orders", content=bare, headers={"Content-Type": "application/json"})
    assert _error(first) == (422, "too_many_orders")
    assert _error(second) == (422, "invalid_input")
    assert rss.peak_mb < RSS_BOUND_MB, f"the cloud grew to {rss.peak_mb:.0f} MB"


def test_a_full_batch_is_still_taken_and_one_order_more_is_refused(clouds: Clouds) -> None:
    batch = [_order(f"FULL-{i:05d}") for i in range(10_000)]
    with clouds.client() as client:
        taken = client.post("/api/v1/orders", json={"orders": batch})
        over = client.post("/api/v1/orders", json={"orders": [*batch, _order("FULL-10000")]})
    assert taken.status_code == 200, taken.text
    assert len(taken.json()["accepted"]) == 10_000
    assert _error(over) == (422, "too_many_orders")


def test_batches_arriving_together_are_held_within_a_memory_budget(clouds: Clouds) -> None:
    # Valid batches of 30 MiB (whitespace), sent all but their last two bytes: each is held in full.
    head, padding, tail = b'{"orders": [', b" " * (30 * MB), b"]}"
    size = len(head) + len(padding) + len(tail)
    fitting = MAX_BUFFERED_BYTES // (30 * MB)
    # The ones that fit close once answered; the one refused mid-body reads its answer and goes on.
    declared = f"Content-Length: {size}\r\n"
    requests = [declared + "Connection: close\r\n"] * fitting + [declared]
    sockets = [socket.create_connection(_address(clouds.http)) for _ in requests]
    try:
        with RssWatch(clouds.pid) as rss:
            for sock, extra in zip(sockets, requests, strict=True):
                sock.sendall(_raw_head("POST", "/api/v1/orders", clouds.token, extra) + head + padding)
            deadline = time.monotonic() + DEADLINE_S
            # The last one did not fit beside the others: refused while it arrived.
            status, reply = _read_response(sockets[-1], deadline)
            assert (status, _json_error(reply)) == (503, "server_busy")
            for sock in sockets[:-1]:
                sock.sendall(tail)
            answers = [_read_answer(sock, deadline) for sock in sockets[:-1]]
        assert [status for status, _ in answers] == [200] * (len(sockets) - 1)
        assert rss.peak_mb < RSS_BOUND_MB, f"the cloud grew to {rss.peak_mb:.0f} MB"
    finally:
        for sock in sockets:
            sock.close()


def test_a_body_over_32_mib_is_refused_declared_or_streamed(clouds: Clouds) -> None:
    body = b'{"orders": [' + b" " * (33 * MB) + b"]}"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), MB):
            yield body[start : start + MB]

    with clouds.client() as client, RssWatch(clouds.pid) as rss:
        declared = client.post("/api/v1/orders", content=body)
        streamed = client.post("/api/v1/orders", content=chunks())
    assert _error(declared) == (413, "body_too_large")
    assert _error(streamed) == (413, "body_too_large")
    assert rss.peak_mb < RSS_BOUND_MB


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"[" * (20 * MB), (422, "invalid_input"), id="20 MB of ["),
        pytest.param(b'{"orders": ' + b"[" * (8 * MB), (422, "too_deep"), id="8 MB deep in orders"),
        pytest.param(b'{"orders": ' + b"[" * 500 + b"]" * 500 + b"}", (400, "invalid_json"), id="500 deep"),
        pytest.param(
            b'{"orders": [' + b",".join([b'{"lines": [' + b"0," * 299 + b"0]}"] * 5000) + b"]}",
            (413, "batch_too_large"),
            id="1.5 million values in 5,000 orders",
        ),
        pytest.param(
            b'{"orders": [], "x": [' + b"0," * (2 * MB) + b"0]}", (422, "invalid_input"), id="extra"
        ),
        pytest.param(b'{"orders": [1, 2', (400, "invalid_json"), id="cut short"),
        pytest.param(b'{"orders": 5}', (422, "invalid_input"), id="orders is a number"),
        pytest.param(b'"orders"', (422, "invalid_input"), id="a string"),
        pytest.param(b"null", (422, "invalid_input"), id="null"),
        pytest.param(b"\xff\xfe{}", (400, "invalid_json"), id="not utf-8"),
    ],
)
def test_hostile_json_is_refused_with_what_is_wrong(
    clouds: Clouds, body: bytes, expected: tuple[int, str]
) -> None:
    with clouds.client() as client, RssWatch(clouds.pid) as rss:
        answer = client.post("/api/v1/orders", content=body, headers={"Content-Type": "application/json"})
    assert _error(answer) == expected, answer.text
    assert rss.peak_mb < RSS_BOUND_MB


def test_orders_of_the_wrong_shape_are_reported_one_by_one(clouds: Clouds) -> None:
    huge_sku = {**_order("HUGE-1"), "lines": [{"sku": "S" * (20 * MB), "qty": 1}]}
    body = {"orders": [_order("GOOD-1"), 7, "text", None, [], huge_sku, {**_order("GOOD-2"), "lines": "x"}]}
    with clouds.client() as client, RssWatch(clouds.pid) as rss:
        answer = client.post("/api/v1/orders", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["accepted"] == ["GOOD-1"]
    assert [error["index"] for error in result["errors"]] == [1, 2, 3, 4, 5, 6]
    assert rss.peak_mb < RSS_BOUND_MB


def test_commas_inside_strings_take_the_exact_count_and_pass(clouds: Clouds) -> None:
    # The quick bound counts these commas as values; the exact count finds ten orders.
    orders = [{**_order(f"COMMA-{i}"), "service_level": "standard"} for i in range(10)]
    text = json.dumps({"orders": orders})
    padded = text[:-2] + ', "' + "," * (MAX_JSON_VALUES + 10) + '"]}'
    with clouds.client() as client:
        answer = client.post("/api/v1/orders", content=padded, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["accepted"]) == 10
    assert [error["index"] for error in answer.json()["errors"]] == [10]


# -- read timeouts and the connection limit ---------------------------------------------------


def test_a_declared_gigabyte_with_no_body_is_answered(clouds: Clouds) -> None:
    with socket.create_connection(_address(clouds.http)) as sock:
        sock.sendall(_raw_head("POST", "/api/v1/orders", clouds.token, "Content-Length: 1000000000\r\n"))
        status, reply = _read_answer(sock, time.monotonic() + DEADLINE_S)
    assert status == 413
    assert _json_error(reply) == "body_too_large"


def test_a_declared_body_never_sent_is_answered_408(clouds: Clouds) -> None:
    with socket.create_connection(_address(clouds.http)) as sock:
        sock.sendall(_raw_head("POST", "/api/v1/orders", clouds.token, "Content-Length: 5000\r\n") + b'{"ord')
        status, reply = _read_answer(sock, time.monotonic() + DEADLINE_S)
    assert status == 408
    assert _json_error(reply) == "body_timeout"


def test_headers_dribbled_byte_by_byte_are_cut_off(clouds: Clouds) -> None:
    head = _raw_head("GET", "/healthz", clouds.token, "X-Padding: " + "a" * 200 + "\r\n")
    deadline = time.monotonic() + DEADLINE_S
    with socket.create_connection(_address(clouds.http)) as sock:
        closed = False
        for byte in head[:-2]:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            # The server's verdict, if any, arrives between our bytes.
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                if sock.recv(1, socket.MSG_PEEK) in (b"", b"H"):
                    closed = True
                    break
            assert time.monotonic() < deadline, "a slowloris client kept its connection"
        assert closed, "the whole head went out a byte at a time and the server still waited"
        status, reply = _read_answer(sock, deadline)
    assert status in (408, None)
    if status == 408:
        assert _json_error(reply) == "request_timeout"


def test_a_refused_request_that_keeps_dribbling_its_body_is_closed(clouds: Clouds) -> None:
    # Answered at once (no credential), then a byte at a time of a megabyte it declared.
    head = _raw_head("POST", "/api/v1/orders", "not-a-token", "Content-Length: 1000000\r\n")
    deadline = time.monotonic() + DEADLINE_S
    with socket.create_connection(_address(clouds.http)) as sock:
        sock.sendall(head)
        sock.settimeout(DEADLINE_S)
        assert sock.recv(12) == b"HTTP/1.1 401"
        sock.recv(65536)  # the rest of the answer
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.2)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
    assert closed, "the server kept a connection whose client dribbled an unread body"


def test_a_connection_that_sends_nothing_is_closed(clouds: Clouds) -> None:
    with socket.create_connection(_address(clouds.http)) as sock:
        status, _reply = _read_answer(sock, time.monotonic() + DEADLINE_S)
    assert status in (408, None)


def _unanswered(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed this connection yet."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # an answer's first byte, or b"" when closed
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def test_a_thousand_stalled_bodies_do_not_starve_a_normal_client(clouds: Clouds) -> None:
    # Anonymous, as an attacker would be: signing in takes a body and no credential.
    stalled: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(_address(clouds.http))
            sock.sendall(_raw_head("POST", "/api/v1/session", "-", "Content-Length: 1000\r\n"))
            stalled.append(sock)
        with clouds.client() as client:
            health = client.get("/healthz")
            warehouses = client.get("/api/v1/warehouses")
        # Served while the stalled requests still wait for their bodies, not after they are gone.
        still_waiting = sum(_unanswered(sock) for sock in stalled)
        assert health.status_code == 200
        assert [w["code"] for w in warehouses.json()["warehouses"]] == ["WH1"]
        assert still_waiting > 500, f"only {still_waiting} stalled requests were still open"
        deadline = time.monotonic() + DEADLINE_S
        statuses = {_read_answer(sock, deadline)[0] for sock in stalled}
        assert statuses == {408}
    finally:
        for sock in stalled:
            sock.close()


def test_connections_past_the_limit_are_refused_503(clouds: Clouds) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(64):
            held.append(socket.create_connection(_address(clouds.no_key_http)))
        with socket.create_connection(_address(clouds.no_key_http)) as extra:
            status, reply = _read_answer(extra, time.monotonic() + DEADLINE_S)
        assert status == 503
        assert _json_error(reply) == "server_busy"
    finally:
        for sock in held:
            sock.close()
    with clouds.client(clouds.no_key_http) as client:
        answer = wait_for(
            lambda: (r := client.get("/healthz")).status_code == 200 and r,
            timeout=DEADLINE_S,
            what="the busy cloud to serve again",
        )
    assert answer.json()["status"] == "ok"


# -- release uploads: key and size first, then streamed to disk ---------------------------------


def test_a_release_upload_without_a_release_key_is_refused_before_its_body_is_read(clouds: Clouds) -> None:
    declared = 100 * MB
    with socket.create_connection(_address(clouds.no_key_http)) as sock:
        sock.sendall(
            _raw_head(
                "POST",
                "/api/v1/releases?version=1.0.0",
                clouds.token,
                f"X-Release-Signature: AAAA\r\nContent-Length: {declared}\r\n",
            )
            + b"\0" * 65536
        )
        # Nearly all of the declared body is still unsent when the answer comes.
        status, reply = _read_response(sock, time.monotonic() + DEADLINE_S)
    assert status == 503
    assert _json_error(reply) == "release_key_missing"


def test_a_release_over_the_limit_is_refused_declared_or_streamed(clouds: Clouds) -> None:
    signature = sign_release(clouds.release_key, "1.0.0", b"x")
    headers = {"X-Release-Signature": signature, "Content-Type": "application/octet-stream"}
    with socket.create_connection(_address(clouds.http)) as sock:
        sock.sendall(
            _raw_head(
                "POST",
                "/api/v1/releases?version=1.0.0",
                clouds.token,
                f"X-Release-Signature: {signature}\r\nContent-Length: {MAX_RELEASE_BYTES + 1}\r\n",
            )
        )
        status, _reply = _read_answer(sock, time.monotonic() + DEADLINE_S)
    assert status == 413

    block = b"\x7fELF" + b"\0" * (MB - 4)

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_RELEASE_BYTES // MB + 2):
            yield block

    with clouds.client() as client, RssWatch(clouds.pid) as rss:
        streamed = client.post(
            "/api/v1/releases", params={"version": "1.0.0"}, content=chunks(), headers=headers
        )
    assert _error(streamed) == (413, "body_too_large")
    assert rss.peak_mb < RSS_BOUND_MB
    with clouds.client() as client:
        assert client.get("/api/v1/releases").json()["releases"] == []


def test_a_signed_release_streams_through_and_a_forged_one_is_refused(clouds: Clouds) -> None:
    blob = b"\x7fELF" + bytes(range(256)) * (8 * 4096)  # 8 MiB, streamed to disk in chunks
    good = sign_release(clouds.release_key, "2.0.0", blob)
    forged = sign_release(generate_release_key()[0], "2.0.1", blob)
    with clouds.client() as client:
        refused = client.post(
            "/api/v1/releases",
            params={"version": "2.0.1"},
            content=blob,
            headers={"X-Release-Signature": forged},
        )
        published = client.post(
            "/api/v1/releases",
            params={"version": "2.0.0"},
            content=blob,
            headers={"X-Release-Signature": good},
        )
    assert _error(refused) == (422, "bad_release")
    assert published.status_code == 201, published.text
    assert published.json()["size"] == len(blob)
