"""The boundary of the agent's local API: who may call it, from where, with what.

A pure ASGI middleware checks every request, in this order, before any route runs:

1. `Host` must name this agent: 127.0.0.1, localhost or [::1] with the port the request came in
   on, the address the connection arrived at (the LAN address of an agent bound to one), or a
   name listed in `[http] allowed_hosts`. Anything else is 403 `host_not_allowed`: a DNS
   rebinding page sends its own name, never one of these.
2. A browser request must come from the agent's own pages: an `Origin` other than the agent's
   own is 403 `origin_not_allowed` unless listed in `[http] allowed_origins`, and without an
   `Origin`, a `Sec-Fetch-Site` other than same-origin or none is 403 `cross_site_request`.
   Only listed origins get CORS answers (no wildcard), including the Private Network Access
   preflight (`Access-Control-Allow-Private-Network`).
3. A credential, except for the few open reads (`OPEN_READS`: the page shell, its files,
   /healthz, /metrics, the API docs, the session probe) and the pairing call: a local token
   (`Authorization: Bearer`) or a station session cookie, else 401.
4. A request that carries a body must say `Content-Type: application/json`, else 415.

Every refusal is the contract's `{"error": {"code", "message"}}` with what to do. The checks
read only headers already in memory; `edge_agent.http.local_credentials` owns the secrets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from dockside.http_errors import send_error
from edge_agent.http.local_credentials import LocalCredentials

__all__ = [
    "LOOPBACK_HOSTS",
    "OPEN_READS",
    "PAIR_PATH",
    "SESSION_PATH",
    "AccessPolicy",
    "LocalAccessGuard",
    "has_session",
    "is_loopback_client",
    "loopback_session",
    "session_cookie_name",
    "session_cookies",
    "set_cookie_header",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SESSION_PATH = "/api/v1/session"
PAIR_PATH = "/api/v1/pair"
# Reads that carry nothing personal and change nothing: open to anyone who names the right host.
OPEN_READS = frozenset(
    {"/", "/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", SESSION_PATH}
)
_STATIC_PREFIX = "/station/"
# Page files and health are fetched by plain links and monitors too: no Origin checks for them.
_PLAIN_READS = OPEN_READS - {SESSION_PATH}
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_MAX_HOST = 300
_MAX_ORIGIN = 300
_MAX_AUTHORIZATION = 512
_MAX_COOKIE_VALUE = 128
_PAIRED_MAX_AGE_S = 400 * 86400  # the longest a browser keeps a cookie
_WANTED = frozenset(
    {
        b"host",
        b"origin",
        b"sec-fetch-site",
        b"authorization",
        b"cookie",
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"access-control-request-method",
        b"access-control-request-private-network",
    }
)


@dataclass(frozen=True)
class AccessPolicy:
    """The names and origins `[http]` adds to the defaults (see `edge_agent.config.HttpSection`)."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()


def session_cookie_name(port: int) -> str:
    """The station session cookie's name: cookies ignore ports, two agents on one PC must not share it."""
    return f"dockside_station_{port}"


def set_cookie_header(port: int, value: str, *, paired: bool) -> str:
    """The Set-Cookie value of a station session: HttpOnly, SameSite=Strict, kept long when paired."""
    cookie = f"{session_cookie_name(port)}={value}; Path=/; HttpOnly; SameSite=Strict"
    return f"{cookie}; Max-Age={_PAIRED_MAX_AGE_S}" if paired else cookie


def session_cookies(header: str | bytes | None, port: int) -> list[str]:
    """This agent's session cookie values in a `Cookie` header (a browser may send an old one too)."""
    if not header or len(header) > 8192:
        return []
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    prefix = session_cookie_name(port) + "="
    values = []
    for part in text.split(";"):
        part = part.strip()
        if part.startswith(prefix):
            value = part[len(prefix) :]
            if 0 < len(value) <= _MAX_COOKIE_VALUE:
                values.append(value)
    return values[:4]


def has_session(header: str | bytes | None, port: int, credentials: LocalCredentials) -> bool | None:
    """Whether the `Cookie` header holds a live session of this agent; None if it holds none at all."""
    values = session_cookies(header, port)
    if not values:
        return None
    return any(credentials.session_ok(value) for value in values)


def loopback_session(scope: Scope, cookie_header: str | None, credentials: LocalCredentials) -> str | None:
    """A Set-Cookie value for a station page opened on this PC that has no live session yet."""
    port = int((scope.get("server") or ("", 0))[1] or 0)
    if has_session(cookie_header, port, credentials) or not is_loopback_client(scope):
        return None
    return set_cookie_header(port, credentials.new_loopback_session(), paired=False)


def is_loopback_client(scope: Scope) -> bool:
    """Whether the request's peer is this PC itself (127.0.0.0/8, ::1, or ::ffff:127.x)."""
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _host_forms(name: str, port: int) -> Iterable[str]:
    name = name.lower()
    if name.endswith("]") or ":" not in name:  # no port given: the agent's own
        yield f"{name}:{port}"
        if port == 80:
            yield name
    else:
        yield name


def _address_forms(server: tuple[str, int]) -> Iterable[str]:
    host, port = str(server[0]).lower(), server[1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if isinstance(address, ipaddress.IPv6Address):
        yield from _host_forms(f"[{host}]", port)
        if address.ipv4_mapped is not None:
            yield from _host_forms(str(address.ipv4_mapped), port)
    else:
        yield from _host_forms(host, port)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class LocalAccessGuard:
    """Pure ASGI middleware: Host, Origin, credential and Content-Type checks (module docstring)."""

    def __init__(self, app: ASGIApp, credentials: LocalCredentials, policy: AccessPolicy) -> None:
        self.app = app
        self.credentials = credentials
        self.policy = policy
        self._origins = frozenset(origin.lower().encode() for origin in policy.allowed_origins)
        self._hosts: dict[tuple[str, int], frozenset[bytes]] = {}

    def _allowed_hosts(self, server: tuple[str, int]) -> frozenset[bytes]:
        allowed = self._hosts.get(server)
        if allowed is None:
            names = [*LOOPBACK_HOSTS, *self.policy.allowed_hosts]
            forms = {form for name in names for form in _host_forms(name, server[1])}
            forms.update(_address_forms(server))
            allowed = frozenset(form.encode() for form in forms)
            if len(self._hosts) < 64:  # one entry per local address the agent is reached on
                self._hosts[server] = allowed
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            cors_origin = self._check(scope)
        except _Refusal as refusal:
            await _refuse(send, refusal)
            return
        if cors_origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await _preflight(send, cors_origin, dict(_headers(scope)))
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", cors_origin),
                    (b"vary", b"origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _check(self, scope: Scope) -> bytes | None:
        """Refuse (raise) or let through; the listed foreign origin to answer with CORS, if any."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name not in _WANTED:
                continue
            if name in headers:
                if name != b"cookie":
                    raise _Refusal(400, "ambiguous_header", f"send the {name.decode()} header once")
                value = headers[name] + b"; " + value
            headers[name] = value
        server = scope.get("server") or ("", 0)
        port = int(server[1] or 0)
        host = headers.get(b"host", b"")
        allowed = self._allowed_hosts((str(server[0]), port))
        if not host or len(host) > _MAX_HOST or host.lower() not in allowed:
            raise _Refusal(
                403,
                "host_not_allowed",
                f"this agent does not answer to the host {host[:64].decode('latin-1')!r}: open it as "
                f"http://127.0.0.1:{port}/ (or the address it is bound to), or add the name to "
                "[http] allowed_hosts in the agent's configuration",
            )
        method, path = scope["method"], scope["path"]
        static = path.startswith(_STATIC_PREFIX) and "/" not in path[len(_STATIC_PREFIX) :]
        if method in _SAFE_METHODS and (path in _PLAIN_READS or static):
            return None
        cors_origin = self._check_origin(scope, headers, host)
        if method == "OPTIONS" and cors_origin is not None:
            return cors_origin
        opens_a_session = (method in _SAFE_METHODS and path in OPEN_READS) or (
            method == "POST" and path == PAIR_PATH
        )
        if not opens_a_session:
            self._check_credential(headers, port)
        if method not in _SAFE_METHODS and _has_body(headers):
            media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            if media != b"application/json":
                raise _Refusal(
                    415,
                    "unsupported_media_type",
                    "the body must be JSON sent with Content-Type: application/json",
                )
        return cors_origin

    def _check_origin(self, scope: Scope, headers: dict[bytes, bytes], host: bytes) -> bytes | None:
        origin = headers.get(b"origin")
        if origin is not None:
            origin = origin.lower()
            if len(origin) <= _MAX_ORIGIN and origin == scope["scheme"].encode() + b"://" + host.lower():
                return None
            if origin in self._origins:
                return origin
            raise _Refusal(
                403,
                "origin_not_allowed",
                f"requests from pages at {origin[:80].decode('latin-1')!r} are refused: use the station "
                "page the agent serves itself, or add that origin to [http] allowed_origins in the "
                "agent's configuration",
            )
        site = headers.get(b"sec-fetch-site")
        if site is not None and site not in (b"same-origin", b"none"):
            raise _Refusal(
                403,
                "cross_site_request",
                "a request sent by another site's page is refused: use the station page the agent "
                "serves itself",
            )
        return None

    def _check_credential(self, headers: dict[bytes, bytes], port: int) -> None:
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            token = token.strip()
            if (
                len(authorization) <= _MAX_AUTHORIZATION
                and scheme.lower() == b"bearer"
                and token
                and self.credentials.token_ok(token)
            ):
                return
            raise _Refusal(
                401,
                "invalid_credential",
                "the local token is not valid (wrong, or rotated since): send the current one as "
                "Authorization: Bearer <token>; `dockside-agent local-token` on the agent's PC prints it",
            )
        session = has_session(headers.get(b"cookie"), port, self.credentials)
        if session is not None:
            if session:
                return
            raise _Refusal(
                401,
                "session_expired",
                "this screen's session is no longer valid (the agent restarted, or the screen was "
                "unpaired): reload the page; a screen on another PC pairs again with a code from "
                "`dockside-agent pair-code`",
            )
        raise _Refusal(
            401,
            "credential_required",
            "this call needs a credential: a program sends Authorization: Bearer <token> "
            "(`dockside-agent local-token` on the agent's PC prints it); the station page opened on "
            "the agent's PC has one already; a screen on another PC pairs once with a code from "
            "`dockside-agent pair-code`",
        )


def _headers(scope: Scope) -> Iterable[tuple[bytes, bytes]]:
    for name, value in scope.get("headers", ()):
        if name in _WANTED:
            yield name, value


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() not in (b"0", b""))


async def _refuse(send: Send, refusal: _Refusal) -> None:
    # A 401 also names the scheme the caller should use.
    scheme = [(b"www-authenticate", b'Bearer realm="dockside-agent"')] if refusal.status == 401 else []
    await send_error(send, refusal.status, refusal.code, refusal.message, scheme)


async def _preflight(send: Send, origin: bytes, headers: dict[bytes, bytes]) -> None:
    """A CORS preflight from a listed origin: the methods and headers the API uses, nothing more."""
    answer = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", b"GET, POST"),
        (b"access-control-allow-headers", b"authorization, content-type"),
        (b"access-control-max-age", b"600"),
        (b"vary", b"origin"),
        (b"content-length", b"0"),
    ]
    if headers.get(b"access-control-request-private-network", b"").lower() == b"true":
        answer.append((b"access-control-allow-private-network", b"true"))
    await send({"type": "http.response.start", "status": 204, "headers": answer})
    await send({"type": "http.response.body", "body": b""})
