"""The agent's local API boundary, tried as a hostile page, a stranger on the LAN and a careless client.

Every route is taken from the app itself, so a route added later without a credential check
fails here. Real agent, real HTTP server, real sockets; the mock printer says what printed.
"""

from __future__ import annotations

import http.client
import re
import socket
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.routing import Route

from edge_agent.commands.cli import main
from edge_agent.config import ConfigError, parse_config
from edge_agent.http.api import create_app
from edge_agent.http.local_access import AccessPolicy, session_cookie_name
from edge_agent.http.local_credentials import (
    LOCAL_TOKEN_FILE,
    PAIR_ATTEMPTS_PER_MINUTE,
    PAIR_CODE_TRIES,
    LocalCredentials,
    issue_pair_code,
)
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    error_of,
    order_body,
    publish_warehouse,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

# What anyone may read without a credential: the page shell and its files, health, metrics, the
# API's own description, and the session probe (how the station page gets its cookie).
OPEN = {
    ("GET", "/"),
    ("GET", "/station/{name}"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("GET", "/api/v1/session"),
    ("POST", "/api/v1/pair"),  # trades a one-time code for a session: the code is the credential
}
SAMPLE = {
    "job_id": "job-1",
    "order_ref": "T-0001",
    "wave_id": "1",
    "code": "S1",
    "name": "station.js",
    "parcel": "1",
    "request_id": "req-1",
}


@pytest.fixture
def printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZBOUND0001").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def cloud(printer: MockPrinter, scale: MockScale) -> MemoryTransport:
    memory = MemoryTransport()
    publish_warehouse(memory)
    assert scale.pty_path
    memory.publish("station", "S1", station_body("S1", printer, scale.pty_path))
    for n in range(1, 6):
        memory.publish("order", f"T-{n:04d}", order_body(f"T-{n:04d}"))
    return memory


def _started(running: RunningAgent) -> RunningAgent:
    running.start()
    running.wait_synced()
    wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
    return running


@pytest.fixture
def agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[RunningAgent]:
    running = _started(RunningAgent(data_dir, cloud))
    try:
        yield running
    finally:
        running.stop()


def _lan_address() -> str:
    """An address of this PC that is not loopback, for a client that is not on the agent's PC."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing: it only picks the route
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.fail("this machine has no non-loopback IPv4 address: the LAN tests need one")
    return address


@pytest.fixture
def lan_agent(data_dir: Path, cloud: MemoryTransport) -> Iterator[tuple[RunningAgent, str]]:
    """An agent bound to every interface, and its URL on this PC's LAN address."""
    running = _started(RunningAgent(data_dir, cloud, http="0.0.0.0:0"))
    try:
        port = running.address.rsplit(":", 1)[1]
        yield running, f"http://{_lan_address()}:{port}"
    finally:
        running.stop()


def _flat(routes: Iterable[Any]) -> Iterator[Route]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.165 keeps routers whole
        if included is not None:
            yield from _flat(included.routes)
        elif isinstance(route, Route):
            yield route


def _routes(agent: RunningAgent) -> list[tuple[str, str]]:
    """(method, path template) of every route the agent's app serves."""
    assert agent.agent is not None
    app = create_app(agent.agent, LocalCredentials(agent.data_dir))
    found = [
        (method, route.path)
        for route in _flat(app.routes)
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]
    # Nothing hides from the walk: every path the API documents is in it.
    assert {path for _, path in found} >= set(app.openapi()["paths"])
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def _bare(agent: RunningAgent, **headers: str) -> httpx.Client:
    """A client of the agent with no credential (or the headers given)."""
    return httpx.Client(base_url=f"http://{agent.address}", headers=headers, timeout=10)


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    # On loopback, GET / hands out a station session: a caller without credential keeps none.
    client.cookies.clear()
    body = {} if method != "GET" else None
    return client.request(method, _concrete(path), json=body)


# -- every route, derived from the app ----------------------------------------------------------


def test_the_open_routes_are_exactly_the_reads_without_personal_data(agent: RunningAgent) -> None:
    routes = set(_routes(agent))
    with _bare(agent) as client:
        open_now = {
            (method, path) for method, path in routes if _call(client, method, path).status_code not in (401,)
        }
    assert open_now == OPEN


def test_every_other_route_is_refused_without_a_credential_and_prints_nothing(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    guarded = [route for route in _routes(agent) if route not in OPEN]
    assert ("POST", "/api/v1/pack") in guarded
    assert ("POST", "/api/v1/stations/{code}/scale/zero") in guarded
    assert ("GET", "/api/v1/orders/{order_ref}") in guarded
    assert ("GET", "/api/v1/stations/{code}/events") in guarded
    wrong = "dsa_" + "x" * 43
    with _bare(agent) as nobody, _bare(agent, authorization=f"Bearer {wrong}") as guesser:
        for method, path in guarded:
            refused = _call(nobody, method, path)
            assert refused.status_code == 401, (method, path, refused.text)
            assert error_of(refused)["code"] == "credential_required"
            assert "dockside-agent local-token" in error_of(refused)["message"]
            assert refused.headers["www-authenticate"].startswith("Bearer")
            guessed = _call(guesser, method, path)
            assert guessed.status_code == 401, (method, path, guessed.text)
            assert error_of(guessed)["code"] == "invalid_credential"
        # Unknown paths are refused too, before anyone learns whether they exist.
        assert _call(nobody, "POST", "/api/v1/anything-new").status_code == 401
    assert printer.labels() == []
    # The same calls with the token reach the API.
    assert agent.pack("T-0001", "with-token").status_code == 200


def test_the_token_file_is_0600_and_the_cli_prints_it(agent: RunningAgent, data_dir: Path) -> None:
    path = data_dir / LOCAL_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = CliRunner().invoke(main, ["local-token", "--data-dir", str(data_dir)])
    assert printed.exit_code == 0, printed.output
    assert printed.output.strip() == agent.token == path.read_text().strip()
    assert agent.token.startswith("dsa_")
    assert len(agent.token) >= 40


def test_a_rotated_token_is_refused_at_once_and_the_new_one_works(
    agent: RunningAgent, data_dir: Path, printer: MockPrinter
) -> None:
    old = agent.token
    assert agent.http is not None
    assert agent.http.get("/api/v1/status").status_code == 200
    rotated = CliRunner().invoke(main, ["local-token", "--rotate", "--data-dir", str(data_dir)])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip()
    assert new != old
    assert stat.S_IMODE((data_dir / LOCAL_TOKEN_FILE).stat().st_mode) == 0o600
    # No waiting: the very next request with the old token is refused.
    refused = agent.http.post(
        "/api/v1/pack", json={"order_ref": "T-0002", "station": "S1", "request_id": "old-token"}
    )
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "invalid_credential"
    assert printer.labels() == []
    with _bare(agent, authorization=f"Bearer {new}") as client:
        assert client.get("/api/v1/status").status_code == 200


def test_the_cli_refuses_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    for command in (["local-token"], ["pair-code"]):
        result = CliRunner().invoke(main, [*command, "--data-dir", str(tmp_path / "nowhere")])
        assert result.exit_code == 1
        assert "there is no agent data dir" in result.output
        assert not (tmp_path / "nowhere").exists()


# -- Host: DNS rebinding ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/orders/T-0001", "/api/v1/status", "/healthz", "/"])
def test_a_foreign_host_is_refused_even_with_the_token(agent: RunningAgent, path: str) -> None:
    assert agent.http is not None
    port = agent.address.rsplit(":", 1)[1]
    for host in (
        "evil.example",
        f"evil.example:{port}",
        "127.0.0.1:1",
        f"localhost.:{port}",
        f"127.0.0.2:{port}",
    ):
        refused = agent.http.get(path, headers={"host": host})
        assert refused.status_code == 403, (host, refused.text)
        assert error_of(refused)["code"] == "host_not_allowed"
        assert "allowed_hosts" in error_of(refused)["message"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert agent.http.get(path, headers={"host": host}).status_code == 200, host


def test_configured_host_names_are_allowed(data_dir: Path, cloud: MemoryTransport) -> None:
    running = _started(RunningAgent(data_dir, cloud, access=AccessPolicy(allowed_hosts=("packing-pc.test",))))
    try:
        assert running.http is not None
        port = running.address.rsplit(":", 1)[1]
        assert (
            running.http.get("/api/v1/status", headers={"host": f"packing-pc.test:{port}"}).status_code == 200
        )
        assert running.http.get("/api/v1/status", headers={"host": "packing-pc.test:1"}).status_code == 403
        assert running.http.get("/api/v1/status", headers={"host": f"other.test:{port}"}).status_code == 403
    finally:
        running.stop()


# -- Origin: other pages in the packer's browser ------------------------------------------------


def test_a_cross_origin_request_is_refused_even_with_a_credential(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    assert agent.http is not None
    port = agent.address.rsplit(":", 1)[1]
    body = {"order_ref": "T-0003", "station": "S1", "request_id": "cross-origin"}
    for origin in (
        "http://evil.example",
        f"http://127.0.0.1:{int(port) + 1}",
        "null",
        f"https://127.0.0.1:{port}",
    ):
        refused = agent.http.post("/api/v1/pack", json=body, headers={"origin": origin})
        assert refused.status_code == 403, (origin, refused.text)
        assert error_of(refused)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in refused.headers
    for site in ("cross-site", "same-site"):
        refused = agent.http.get("/api/v1/orders/T-0003", headers={"sec-fetch-site": site})
        assert refused.status_code == 403, site
        assert error_of(refused)["code"] == "cross_site_request"
    assert printer.labels() == []
    # The agent's own page is same-origin: its Origin is the agent's own.
    own = agent.http.post("/api/v1/pack", json=body, headers={"origin": f"http://127.0.0.1:{port}"})
    assert own.status_code == 200, own.text


def test_private_network_preflights_are_answered_for_configured_origins_only(
    data_dir: Path, cloud: MemoryTransport
) -> None:
    listed = "https://wms.example.com"
    running = _started(RunningAgent(data_dir, cloud, access=AccessPolicy(allowed_origins=(listed,))))
    try:
        assert running.http is not None
        preflight = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
            "access-control-request-private-network": "true",
        }
        answer = running.http.options("/api/v1/pack", headers={**preflight, "origin": listed})
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == listed
        assert answer.headers["access-control-allow-private-network"] == "true"
        assert "*" not in answer.headers["access-control-allow-origin"]
        other = running.http.options("/api/v1/pack", headers={**preflight, "origin": "https://evil.example"})
        assert other.status_code == 403
        assert "access-control-allow-private-network" not in other.headers
        # A listed origin still needs the token, and gets CORS headers on the real answer.
        status = running.http.get("/api/v1/status", headers={"origin": listed})
        assert status.status_code == 200
        assert status.headers["access-control-allow-origin"] == listed
        with _bare(running, origin=listed) as nobody:
            assert nobody.get("/api/v1/status").status_code == 401
    finally:
        running.stop()


# -- Content-Type: no "simple" request reaches a route ---------------------------------------------


def test_a_body_that_is_not_declared_json_is_refused_with_415(
    agent: RunningAgent, printer: MockPrinter
) -> None:
    assert agent.http is not None
    raw = b'{"order_ref": "T-0004", "station": "S1", "request_id": "plain"}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ):
        headers = {"content-type": content_type} if content_type else {}
        refused = agent.http.post("/api/v1/pack", content=raw, headers=headers)
        assert refused.status_code == 415, (content_type, refused.text)
        assert error_of(refused)["code"] == "unsupported_media_type"
        assert "application/json" in error_of(refused)["message"]
    assert printer.labels() == []
    accepted = agent.http.post(
        "/api/v1/pack", content=raw, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert accepted.status_code == 200, accepted.text
    # A call without a body (zero, tare) needs no Content-Type.
    assert agent.http.post("/api/v1/stations/S1/scale/tare").status_code == 200


# -- the station page's session cookie -------------------------------------------------------------


def test_the_page_opened_on_this_pc_gets_an_httponly_strict_session(agent: RunningAgent) -> None:
    port = int(agent.address.rsplit(":", 1)[1])
    with _bare(agent) as browser:
        page = browser.get("/")
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert cookie.startswith(f"{session_cookie_name(port)}=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert browser.get("/api/v1/status").status_code == 200
        assert browser.post("/api/v1/stations/S1/scale/tare").status_code == 200
        # The page's session is reused, not replaced, on reload.
        assert "set-cookie" not in browser.get("/").headers
        assert browser.get("/api/v1/session").json() == {"signed_in": True}
    with _bare(agent) as stale:
        stale.cookies.set(session_cookie_name(port), "made.up")
        refused = stale.get("/api/v1/status")
        assert refused.status_code == 401
        assert error_of(refused)["code"] == "session_expired"
        # The page asks for a new one, as after an agent restart, and gets it on this PC.
        renewed = stale.get("/api/v1/session")
        assert renewed.json() == {"signed_in": True}
        assert "set-cookie" in renewed.headers
        assert stale.get("/api/v1/status").status_code == 200
    with _bare(agent) as other_agent:
        # Cookies ignore ports: another agent's session on this PC is not this one's.
        other_agent.cookies.set(session_cookie_name(port + 1), "x.y")
        assert other_agent.get("/api/v1/status").status_code == 401


def test_hostile_credentials_hosts_and_origins_are_refused_cleanly(agent: RunningAgent) -> None:
    host, port = agent.address.rsplit(":", 1)
    cases: list[tuple[list[tuple[str, bytes]], int]] = [
        ([("Authorization", b"Bearer " + b"A" * 20_000)], 401),
        ([("Authorization", b"Bearer \xff\xfetoken")], 401),
        ([("Authorization", b"Basic " + b"dXNlcjpwYXNz")], 401),
        ([("Authorization", b"Bearer")], 401),
        ([("Cookie", f"{session_cookie_name(int(port))}=".encode() + b"A" * 6000)], 401),
        ([("Cookie", f"{session_cookie_name(int(port))}=.".encode())], 401),
        ([("Cookie", b"\xff" * 3000)], 401),
        ([("Origin", b"http://" + b"a" * 5000)], 403),
        ([("Origin", b"http://127.0.0.1:" + port.encode() + b"\xff")], 403),
    ]
    for extra, expected in cases:
        status, body = _raw(
            host, int(port), "GET", "/api/v1/status", [("Host", agent.address.encode()), *extra]
        )
        assert status == expected, (extra[0][0], status, body[:200])
        assert b'"error"' in body
        assert b"Traceback" not in body
    for bad_host in (b"a" * 5000, b"127.0.0.1:" + port.encode() + b"\xff", b""):
        status, body = _raw(host, int(port), "GET", "/healthz", [("Host", bad_host)])
        assert status in (400, 403), (bad_host[:20], status)
    # Two Host headers: which one would a proxy believe? Neither.
    status, _ = _raw(
        host, int(port), "GET", "/healthz", [("Host", agent.address.encode()), ("Host", b"evil.example")]
    )
    assert status in (400, 403)
    assert agent.http is not None
    assert agent.http.get("/healthz").status_code == 200


def _raw(host: str, port: int, method: str, path: str, headers: list[tuple[str, bytes]]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- pairing a screen on another PC ---------------------------------------------------------------


def _pair(client: httpx.Client, code: str) -> httpx.Response:
    return client.post("/api/v1/pair", json={"code": code})


def test_a_screen_on_another_pc_gets_no_session_until_it_pairs(
    lan_agent: tuple[RunningAgent, str], data_dir: Path, printer: MockPrinter
) -> None:
    _, url = lan_agent
    with httpx.Client(base_url=url, timeout=10) as screen:
        page = screen.get("/")
        assert page.status_code == 200
        assert "set-cookie" not in page.headers  # the shell, but no session off this PC
        probe = screen.get("/api/v1/session").json()
        assert probe["signed_in"] is False
        assert "dockside-agent pair-code" in probe["pairing"]
        assert (
            screen.post(
                "/api/v1/pack", json={"order_ref": "T-0005", "station": "S1", "request_id": "lan"}
            ).status_code
            == 401
        )

        printed = CliRunner().invoke(main, ["pair-code", "--data-dir", str(data_dir)])
        assert printed.exit_code == 0, printed.output
        code = printed.stdout.strip()
        assert re.fullmatch(r"[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", code), code
        assert stat.S_IMODE((data_dir / "pair-code.json").stat().st_mode) == 0o600
        assert code.replace("-", "") not in (data_dir / "pair-code.json").read_text()

        wrong = _pair(screen, "AAAA-AAAA")
        assert wrong.status_code == 403
        assert error_of(wrong)["code"] == "pairing_code_wrong"
        paired = _pair(screen, code.lower().replace("-", " "))  # typed as a person would
        assert paired.status_code == 200, paired.text
        cookie = paired.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Max-Age=" in cookie
        assert screen.get("/api/v1/session").json() == {"signed_in": True}
        packed = screen.post(
            "/api/v1/pack", json={"order_ref": "T-0005", "station": "S1", "request_id": "lan"}
        )
        assert packed.status_code == 200, packed.text
        printer.wait_for_labels(1)

    with httpx.Client(base_url=url, timeout=10) as second_screen:
        # One code, one screen.
        again = _pair(second_screen, code)
        assert again.status_code == 403
        assert error_of(again)["code"] == "pairing_code_missing"

    # Pairing outlives an agent restart; unpairing ends it at once.
    assert (data_dir / "paired-screens.json").exists()
    assert stat.S_IMODE((data_dir / "paired-screens.json").stat().st_mode) == 0o600
    with httpx.Client(base_url=url, timeout=10) as screen_again:
        screen_again.cookies.set(*cookie.split(";", 1)[0].split("=", 1))
        assert screen_again.get("/api/v1/status").status_code == 200
        forgot = CliRunner().invoke(main, ["pair-code", "--unpair-all", "--data-dir", str(data_dir)])
        assert forgot.exit_code == 0
        assert "Forgot 1" in forgot.output
        assert screen_again.get("/api/v1/status").status_code == 401


def test_a_pairing_code_expires_and_is_burned_after_too_many_wrong_tries(
    lan_agent: tuple[RunningAgent, str], data_dir: Path
) -> None:
    _, url = lan_agent
    with httpx.Client(base_url=url, timeout=10) as screen:
        expired, _ = issue_pair_code(data_dir, ttl_s=-1.0)
        refused = _pair(screen, expired)
        assert refused.status_code == 403
        assert error_of(refused)["code"] == "pairing_code_expired"

        code, _ = issue_pair_code(data_dir)
        for n in range(PAIR_CODE_TRIES):
            wrong = _pair(screen, "BBBB-BBBB")
            assert wrong.status_code == 403
            expected = "pairing_locked" if n == PAIR_CODE_TRIES - 1 else "pairing_code_wrong"
            assert error_of(wrong)["code"] == expected
        late = _pair(screen, code)  # the right code, after the lock: refused
        assert late.status_code == 403
        assert error_of(late)["code"] == "pairing_code_missing"
        assert "set-cookie" not in late.headers


def test_pairing_attempts_are_throttled_and_hostile_bodies_refused(
    lan_agent: tuple[RunningAgent, str], data_dir: Path
) -> None:
    _, url = lan_agent
    with httpx.Client(base_url=url, timeout=10) as screen:
        assert (
            screen.post(
                "/api/v1/pair", content=b"code=AAAA", headers={"content-type": "text/plain"}
            ).status_code
            == 415
        )
        assert screen.post("/api/v1/pair", json={"code": "A" * 10_000}).status_code == 422
        assert screen.post("/api/v1/pair", json=["not", "an", "object"]).status_code == 422
        assert (
            screen.post(
                "/api/v1/pair", json={"code": "x"}, headers={"origin": "http://evil.example"}
            ).status_code
            == 403
        )
        statuses = []
        for _ in range(PAIR_ATTEMPTS_PER_MINUTE + 1):
            issue_pair_code(data_dir)  # a fresh code each time, so only the throttle can stop them
            statuses.append(_pair(screen, "CCCC-CCCC").status_code)
        assert statuses[-1] == 429
        assert set(statuses[:-1]) <= {403, 429}
        code, _ = issue_pair_code(data_dir)
        throttled = _pair(screen, code)
        assert throttled.status_code == 429
        assert error_of(throttled)["code"] == "too_many_attempts"


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowed_hosts", "*"),
        ("allowed_hosts", "*.example.com"),
        ("allowed_hosts", "http://packing-pc"),
        ("allowed_hosts", "packing-pc/path"),
        ("allowed_origins", "*"),
        ("allowed_origins", "null"),
        ("allowed_origins", "https://wms.example.com/app"),
        ("allowed_origins", "wms.example.com"),
    ],
)
def test_a_wildcard_or_malformed_host_or_origin_is_refused_at_start(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f'[http]\n{key} = ["{value}"]\n', Path("agent.toml"))
    assert f"http.{key}" in refused.value.message


def test_host_names_and_origins_are_read_from_the_http_section() -> None:
    config = parse_config(
        '[http]\nallowed_hosts = ["Packing-PC-3.local", "192.168.1.20:8100", "[fe80::1]"]\n'
        'allowed_origins = ["https://WMS.example.com", "http://10.0.0.5:3000"]\n',
        Path("agent.toml"),
    )
    assert config.http.allowed_hosts == ("packing-pc-3.local", "192.168.1.20:8100", "[fe80::1]")
    assert config.http.allowed_origins == ("https://wms.example.com", "http://10.0.0.5:3000")
