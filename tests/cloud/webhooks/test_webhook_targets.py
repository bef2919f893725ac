"""Webhooks never reach the cloud's own network (SSRF): hostile URLs at save time and at delivery time."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest

from cloud.storage.store import CloudStore, utcnow
from cloud.webhooks import delivery as webhooks
from cloud.webhooks.targets import ALLOW_PRIVATE_ENV, UnsafeWebhookUrl, webhook_target
from tests.cloud.conftest import RunningCloud
from tests.cloud.sync.test_sync_security import _certificate, _key_pem, _pem
from tests.cloud.webhook_receiver import Receiver, receiver_fixture  # noqa: F401 (the `receiver` fixture)

EVENT = [webhooks.WebhookEvent.ORDER_STATE_CHANGED]

# (url, what the refusal must say)
NOT_PUBLIC = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "loopback"),  # a name that resolves to 127.0.0.1
    ("http://LOCALHOST:8000/hook", "loopback"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
    ("http://017700000001/", "loopback"),  # ... as octal
    ("http://0x7f.1/", "loopback"),  # ... as hex, shortened
    ("http://127.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64 of 127.0.0.1
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1:8080/", "private"),
    ("http://[fc00::1]/", "private"),  # unique-local
    ("http://100.64.0.1/", "not a public internet address"),  # carrier-grade NAT
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://240.0.0.1/", "reserved"),
]

MALFORMED = [
    ("ftp://example.com/hook", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://127.0.0.1:25/", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("//8.8.8.8/hook", "http:// or https://"),
    ("http://user:secret@8.8.8.8/hook", "user name or password"),
    ("https://token@8.8.8.8/hook", "user name or password"),
    ("http:///hook", "no host"),
    ("http://exa mple.com/", "not a host name"),
    ("http://[fe80::1%25eth0]/", "not a host name"),
    ("http://8.8.8.8:99999/", "port 99999 does not exist"),
    ("http://8.8.8.8:0/", "port 0 does not exist"),
    ("http://[::1/", "cannot be read"),
    ("http://" + "a" * 64 + ".example/", "not a host name"),
    ("https://8.8.8.8/" + "x" * 2100, "at most 2,000"),
    ("http://no-such-host.invalid/hook", "cannot be resolved"),
]


@pytest.mark.parametrize(("url", "reason"), NOT_PUBLIC)
def test_a_url_reaching_a_non_public_address_is_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeWebhookUrl) as refused:
        webhook_target(url, allow_private=False)
    assert reason in refused.value.message
    assert "give the receiver's public https:// address" in refused.value.message
    assert refused.value.http_status == 422


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
def test_a_malformed_url_is_refused_even_when_private_networks_are_allowed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeWebhookUrl) as refused:
        webhook_target(url, allow_private=True)
    assert reason in refused.value.message
    assert len(refused.value.message) < 400  # never echoes a huge URL back


def test_a_public_address_passes_and_is_what_the_delivery_connects_to() -> None:
    target = webhook_target("https://8.8.8.8:8443/hooks/dockside?x=1", allow_private=False)
    assert target.connect_urls == ("https://8.8.8.8:8443/hooks/dockside?x=1",)
    assert target.host_header == "8.8.8.8:8443"
    pinned = webhook_target("https://localhost:9443/hook", allow_private=True)
    # Connect to the checked address; TLS still checks the name, and Host carries it.
    assert pinned.connect_urls == ("https://127.0.0.1:9443/hook",)
    assert (pinned.host_header, pinned.extensions) == ("localhost:9443", {"sni_hostname": "localhost"})


def test_private_networks_are_allowed_only_by_the_explicit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)
    with pytest.raises(UnsafeWebhookUrl):
        webhook_target("http://127.0.0.1:9/hook")
    for off in ("0", "", "no", "false"):
        monkeypatch.setenv(ALLOW_PRIVATE_ENV, off)
        with pytest.raises(UnsafeWebhookUrl):
            webhook_target("http://127.0.0.1:9/hook")
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    assert webhook_target("http://127.0.0.1:9/hook").connect_urls == ("http://127.0.0.1:9/hook",)


def test_the_api_refuses_hostile_urls_with_422_saying_why(
    cloud: RunningCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)
    for url, reason in [*NOT_PUBLIC, *MALFORMED[:-2]]:
        answer = cloud.api.post("/api/v1/webhooks", json={"url": url, "events": ["exception.opened"]})
        assert answer.status_code == 422, (url, answer.text)
        error = answer.json()["error"]
        assert error["code"] in ("invalid_webhook_url", "invalid_input"), (url, error)
        if error["code"] == "invalid_webhook_url":
            assert reason in error["message"], (url, error)
    assert cloud.api.get("/api/v1/webhooks").json() == {"webhooks": []}
    assert cloud.api.get("/api/v1/audit", params={"object_kind": "webhook"}).json()["entries"] == []


def test_a_url_is_checked_again_at_delivery_time(
    store: CloudStore, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = store.tenant_id()
    sub = webhooks.create_subscription(store, tenant, receiver.url, EVENT)
    with store.write() as tx:
        webhooks.emit(tx, tenant, EVENT[0], [{"order_ref": "R1"}])
    # What was allowed when saved (here: the setting was on) is refused when it no longer is,
    # as when a name starts resolving to an internal address.
    monkeypatch.delenv(ALLOW_PRIVATE_ENV)
    with httpx.Client() as client:
        assert webhooks.deliver_due(store, client, now=utcnow() + dt.timedelta(seconds=1)) == 1
    assert receiver.received == []
    (delivery,) = webhooks.list_deliveries(store, tenant, sub["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_error"].startswith("not sent: webhooks may only go to public internet addresses")


def test_redirects_are_never_followed(store: CloudStore, receiver: Receiver) -> None:
    tenant = store.tenant_id()
    inner = Receiver(host="127.0.0.1")
    try:
        receiver.redirect_to = inner.url.replace("127.0.0.1", "169.254.169.254")
        sub = webhooks.create_subscription(store, tenant, receiver.url, EVENT)
        with store.write() as tx:
            webhooks.emit(tx, tenant, EVENT[0], [{"order_ref": "R1"}])
        with httpx.Client(follow_redirects=True) as client:  # even a client that would follow
            assert webhooks.deliver_due(store, client, now=utcnow() + dt.timedelta(seconds=1)) == 1
        assert len(receiver.received) == 1
        assert inner.received == []
        (delivery,) = webhooks.list_deliveries(store, tenant, sub["id"])
        assert delivery["last_status_code"] == 302
        assert "redirect, not followed" in delivery["last_error"]
    finally:
        inner.close()


def test_an_https_delivery_to_the_checked_address_still_verifies_the_name(
    store: CloudStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "1")
    ca = _certificate("Dockside webhook test CA", None, ca=True)
    leaf, key = _certificate("localhost", ca)  # for the name localhost only
    (tmp_path / "cert.pem").write_bytes(_pem(leaf))
    (tmp_path / "key.pem").write_bytes(_key_pem(key))
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trust = ssl.create_default_context(cadata=_pem(ca[0]).decode())
    receiver = Receiver(tls=server_tls, host="localhost")
    try:
        tenant = store.tenant_id()
        good = webhooks.create_subscription(store, tenant, receiver.url, EVENT)
        # The same server under a name its certificate does not carry must fail verification.
        wrong = webhooks.create_subscription(
            store, tenant, receiver.url.replace("localhost", "127.0.0.1"), EVENT
        )
        with store.write() as tx:
            webhooks.emit(tx, tenant, EVENT[0], [{"order_ref": "R1"}])
        with httpx.Client(verify=trust) as client:
            assert webhooks.deliver_due(store, client, now=utcnow() + dt.timedelta(seconds=1)) == 2
        (delivered,) = webhooks.list_deliveries(store, tenant, good["id"])
        (refused,) = webhooks.list_deliveries(store, tenant, wrong["id"])
        assert (delivered["status"], delivered["last_status_code"]) == ("delivered", 204)
        assert refused["status"] == "pending"
        assert "ConnectError" in refused["last_error"]
        (got,) = receiver.received
        assert got["headers"]["Host"] == receiver.url.split("/")[2]
    finally:
        receiver.close()
