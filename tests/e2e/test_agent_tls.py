"""The agent syncs with a cloud serving gRPC over TLS and mutual TLS, as real processes.

Certificates are made here with `cryptography`; the agent enrolls with --tls-ca (and its own
pair for mTLS), `run` picks the recorded paths up without flags, and orders sync and pack. A
wrong CA is refused with a message that says what to check, never a traceback.

The tests against a cloud serving TLS without asking for a client certificate share one such
cloud (`tls_cloud`), each with an agent and data folder of its own; the mutual-TLS test starts a
cloud of its own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.provision import provision
from bench.stack import Stack, running_stack, wait_for
from edge_agent.sync.cloud_tls import TLS_FILENAME
from tests.e2e.conftest import Station


@dataclass(frozen=True)
class Pki:
    """A CA, a server pair it signed for localhost/127.0.0.1, a client pair, and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _issue(
    folder: Path, name: str, issuer: Issuer | None, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    elif server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key, cert_path, key_path


def make_pki(folder: Path) -> Pki:
    """Write the test PKI's PEM files into `folder` (created)."""
    folder.mkdir()
    ca_cert, ca_key, ca, _ = _issue(folder, "ca", None, server=False)
    _, _, server_cert, server_key = _issue(folder, "cloud", (ca_cert, ca_key), server=True)
    _, _, client_cert, client_key = _issue(folder, "agent", (ca_cert, ca_key), server=False)
    _, _, other_ca, _ = _issue(folder, "other-ca", None, server=False)
    return Pki(ca, server_cert, server_key, client_cert, client_key, other_ca)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("tls") / "pki")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path / "stack") as started:
        yield started


@pytest.fixture(scope="module")
def tls_cloud(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Stack]:
    """A cloud serving gRPC over TLS (no client certificate asked), with WH1's printer, scale and
    orders: the module's tests enroll and run their own agents against it and change nothing else."""
    with running_stack(tmp_path_factory.mktemp("tls-stack")) as started:
        _start_parts(started, ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)])
        yield started


def _start_parts(stack: Stack, cloud_tls: list[str]) -> None:
    stack.start_cloud(extra=cloud_tls)
    stack.start_printer(serial="ZD421-TLS")
    stack.start_scale()
    stack.control("scale", "POST", "/weight", {"grams": 1500, "stable": True})
    provision(stack, order_count=3, order_prefix="TLS")


def _enroll(stack: Stack, extra: list[str], *, agent: str = "agent", check: bool = True) -> str:
    token = stack.admin_call("POST", "/api/v1/warehouses/WH1/enrollment-tokens", {"ttl_s": 600})["token"]
    command = ["dockside-agent", "enroll", "--cloud", stack.cloud.ready["grpc"], "--token", token]
    return stack.run([*command, "--data-dir", str(stack.agent_dir(agent)), *extra], check=check)


def _packs_and_reports(stack: Stack, agent: str = "agent") -> None:
    station = Station(stack, agent)
    try:
        station.wait_synced("TLS-0003")
        response = station.pack("TLS-0001", "req-tls-1")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "sent"

        def cloud_has_packed() -> bool:
            events = stack.admin_call("GET", "/api/v1/orders/TLS-0001")["events"]
            return any(event["kind"] == "order_packed" for event in events)

        wait_for(cloud_has_packed, timeout=20, what="the pack event to reach the cloud over TLS")
    finally:
        station.http.close()


def test_the_agent_enrolls_syncs_and_packs_over_tls(tls_cloud: Stack, pki: Pki) -> None:
    stack, agent = tls_cloud, "tls"
    out = _enroll(stack, ["--tls-ca", str(pki.ca)], agent=agent)
    assert "TLS" in out
    recorded = json.loads((stack.agent_dir(agent) / TLS_FILENAME).read_text())
    assert recorded == {"ca": str(pki.ca.resolve()), "cert": None, "key": None}
    stack.start_agent(agent)  # no --tls-* flags: `run` uses what enrollment recorded
    try:
        _packs_and_reports(stack, agent)
        # The doctor reads the same settings: it checks TLS with the recorded CA and passes.
        command = ["dockside-agent", "doctor", "--data-dir", str(stack.agent_dir(agent)), "--json"]
        report = json.loads(stack.run([*command, "--agent-url", stack.agent_url(agent)], check=False))
        findings = {finding["check"]: finding for finding in report["findings"]}
        assert findings["tls"]["severity"] == "ok", findings["tls"]
    finally:
        stack.processes[agent].stop()


def test_the_agent_syncs_over_mutual_tls_with_its_own_certificate(stack: Stack, pki: Pki) -> None:
    _start_parts(
        stack,
        [
            *("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)),
            *("--tls-client-ca", str(pki.ca)),
        ],
    )
    client = ["--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
    refused = _enroll(stack, ["--tls-ca", str(pki.ca)], check=False)  # no client certificate
    assert "enrollment failed" in refused
    assert "Traceback" not in refused
    _enroll(stack, ["--tls-ca", str(pki.ca), *client])
    stack.start_agent()
    _packs_and_reports(stack)


def test_a_wrong_ca_is_refused_with_what_to_check(tls_cloud: Stack, pki: Pki) -> None:
    out = _enroll(tls_cloud, ["--tls-ca", str(pki.other_ca)], agent="wrong-ca", check=False)
    assert "Traceback" not in out
    assert "enrollment failed" in out
    assert f"that {pki.other_ca} is the CA that signed the cloud's certificate" in out
    assert not (tls_cloud.agent_dir("wrong-ca") / TLS_FILENAME).exists()


def test_plain_grpc_against_a_tls_cloud_says_to_give_the_ca(tls_cloud: Stack) -> None:
    out = _enroll(tls_cloud, [], agent="plain", check=False)
    assert "Traceback" not in out
    assert "if the cloud serves TLS, give --tls-ca" in out


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--tls-cert", "x.pem"], "needs both --tls-cert and --tls-key"),
        (["--tls-ca", "/nonexistent/ca.pem"], "cannot read the TLS CA /nonexistent/ca.pem"),
    ],
)
def test_bad_tls_options_are_refused_before_dialling(tmp_path: Path, extra: list[str], expected: str) -> None:
    with running_stack(tmp_path / "bare") as bare:
        command = ["dockside-agent", "enroll", "--cloud", "127.0.0.1:1", "--token", "dse_x"]
        out = bare.run([*command, "--data-dir", str(tmp_path / "agent"), *extra], check=False)
    assert expected in out
    assert "Traceback" not in out


def test_run_with_a_wrong_ca_says_what_to_fix_and_keeps_retrying(tls_cloud: Stack, pki: Pki) -> None:
    stack, name = tls_cloud, "wrong-ca-run"
    _enroll(stack, ["--tls-ca", str(pki.ca)], agent=name)
    folder = str(stack.agent_dir(name))
    # --tls-ca wins over what enrollment recorded: this run trusts the wrong CA.
    agent = stack.spawn(
        name,
        [
            "dockside-agent",
            "run",
            "--data-dir",
            folder,
            "--http",
            "127.0.0.1:0",
            "--tls-ca",
            str(pki.other_ca),
        ],
    )
    station = Station(stack, name)
    try:
        hint = f"cannot verify the cloud's certificate: check the TLS CA {pki.other_ca}"
        wait_for(
            lambda: station.status()["last_error"].startswith(hint),
            timeout=20,
            what="the status to say which CA to check",
        )
        told = f"cannot sync with the cloud: {hint}"
        wait_for(lambda: told in agent.log_tail(200), timeout=20, what="the error line in the agent's log")
        # Still retrying: more attempts follow the error, each logged as a reconnect.
        wait_for(
            lambda: agent.log_tail(400).count("change stream down") >= 2, timeout=30, what="a second attempt"
        )
        assert agent.alive()
        assert not station.status()["online"]
    finally:
        station.http.close()
        agent.stop()
