"""Where a webhook may be sent: public http(s) addresses only, checked when saved and when sent.

    target = webhook_target(url)          # UnsafeWebhookUrl (422) saying why and what to do
    client.post(target.connect_urls[0], headers={"Host": target.host_header}, extensions=target.extensions)

A webhook URL is a request the cloud makes on a tenant's behalf, so it must not reach the
cloud's own network (server-side request forgery): loopback, private (RFC 1918), shared
(100.64/10), link-local (169.254/16, where cloud metadata services answer), unique-local and
site-local IPv6, multicast, reserved and unspecified addresses are refused, including when they
are written as decimal or octal numbers (http://2130706433/, http://0x7f.1/), IPv4-mapped or
NAT64/6to4-embedded IPv6, or names that resolve to them (localhost). Schemes other than http and
https and credentials in the URL are refused too.

The host is resolved when the subscription is saved and again before every delivery (DNS can
change), and the delivery connects to the address that was checked (TLS still verifies the name),
so a name cannot pass the check and then resolve elsewhere. Redirects are never followed.

Tests and demos that deliver to a receiver on this machine set the environment variable
DOCKSIDE_WEBHOOK_ALLOW_PRIVATE_NETWORKS=1 (off by default; never set it in production): then
non-public addresses are allowed, every other rule still holds.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from dockside.errors import InputError

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "MAX_URL_LENGTH",
    "UnsafeWebhookUrl",
    "WebhookTarget",
    "private_networks_allowed",
    "webhook_target",
]

ALLOW_PRIVATE_ENV = "DOCKSIDE_WEBHOOK_ALLOW_PRIVATE_NETWORKS"
MAX_URL_LENGTH = 2000
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeWebhookUrl(InputError):
    """A webhook URL the cloud will not send to."""

    code = "invalid_webhook_url"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook URL and the public address to connect to for it."""

    url: str
    host_header: str
    connect_urls: tuple[str, ...]  # one per checked address, in the resolver's order
    extensions: dict[str, Any] = field(default_factory=dict)


def private_networks_allowed() -> bool:
    """Whether DOCKSIDE_WEBHOOK_ALLOW_PRIVATE_NETWORKS is on (tests and demos only)."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def webhook_target(url: str, *, allow_private: bool | None = None) -> WebhookTarget:
    """Check `url` and resolve its host; UnsafeWebhookUrl says what is wrong and what to do."""
    if allow_private is None:
        allow_private = private_networks_allowed()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(
            f"this webhook url is {len(url):,} characters long: give one of at most {MAX_URL_LENGTH:,}"
        )
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise UnsafeWebhookUrl(f"this webhook url cannot be read ({exc}): give an https:// address") from None
    if parsed.scheme not in ("http", "https") or not url.lower().startswith(("http://", "https://")):
        raise UnsafeWebhookUrl("a webhook url is an http:// or https:// address: give one (https is best)")
    if parsed.userinfo:
        raise UnsafeWebhookUrl(
            "a webhook url must not hold a user name or password: remove them; the receiver checks "
            "the X-Dockside-Signature header instead"
        )
    host = parsed.host
    if not host:
        raise UnsafeWebhookUrl("this webhook url has no host name: give https://host/path")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise UnsafeWebhookUrl(f"port {port} does not exist: give a port from 1 to 65535, or none")
    literal = _ip_literal(host) if "%" not in host else None  # no IPv6 zone ids (fe80::1%eth0)
    if literal is None and not _HOSTNAME.match(host):
        raise UnsafeWebhookUrl(
            f"{host[:100]!r} is not a host name: give the receiver's DNS name or IP address"
        )
    addresses = [literal] if literal is not None else _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = _not_public(address)
            if reason is not None:
                raise UnsafeWebhookUrl(
                    f"webhooks may only go to public internet addresses, and {host[:100]} is {address}, "
                    f"{reason}: give the receiver's public https:// address"
                )
    extensions = {"sni_hostname": host} if parsed.scheme == "https" and literal is None else {}
    netloc = parsed.netloc.decode("ascii")
    return WebhookTarget(
        url=url,
        host_header=netloc,
        connect_urls=tuple(str(parsed.copy_with(host=str(address))) for address in addresses),
        extensions=extensions,
    )


def _ip_literal(host: str) -> _IP | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[_IP]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnsafeWebhookUrl(
            f"the webhook host {host[:100]} cannot be resolved ({exc}): "
            "check the name, or give its IP address"
        ) from None
    addresses: list[_IP] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeWebhookUrl(f"the webhook host {host[:100]} has no address: check the name")
    return addresses


def _not_public(address: _IP) -> str | None:
    """Why `address` is not a public internet address, or None when it is."""
    candidates: list[_IP] = []
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 addresses hidden in IPv6 ones reach the IPv4 network they name.
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64 or address in _NAT64_LOCAL:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        candidates.extend(ip for ip in embedded if ip is not None)
    candidates.append(address)
    for candidate in candidates:
        for test, reason in (
            (candidate.is_unspecified, "the unspecified address"),
            (candidate.is_loopback, "a loopback address (this machine)"),
            (candidate.is_link_local, "a link-local address (where cloud metadata services answer)"),
            (candidate.is_multicast, "a multicast address"),
            (candidate.is_reserved, "a reserved address"),
            (candidate.is_private, "a private network address"),
            (not candidate.is_global, "not a public internet address"),
        ):
            if test:
                return reason
    return None
