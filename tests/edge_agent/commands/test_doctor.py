"""`dockside-agent doctor` against a real stack: healthy, then each failure it detects."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.provision import provision
from bench.stack import Stack, running_stack, wait_for
from dockside.sync import EventKind
from edge_agent.commands.doctor import Doctor, DoctorSettings, Finding, doctor_command
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox
from edge_agent.sync.cloud_tls import CloudTls


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Cloud, printer, scale and an enrolled agent that synced its stations once, then stopped."""
    with running_stack(tmp_path_factory.mktemp("doctor")) as started:
        started.start_cloud()
        started.start_printer(serial="ZD421-DOC")
        started.start_scale()
        started.control("scale", "POST", "/weight", {"grams": 800, "stable": True})
        provision(started, order_count=2, order_prefix="DOC")
        started.enroll_agent("WH1")
        agent = started.start_agent()
        with started.agent_client() as client:
            wait_for(
                lambda: client.get("/api/v1/status").json()["stations"],
                timeout=30,
                what="the agent to sync S1",
            )
        agent.stop()
        yield started


@pytest.fixture
def settings() -> DoctorSettings:
    # Nothing listens at agent_url: the doctor asks the devices itself.
    return DoctorSettings(agent_url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2.0)


def run(stack: Stack, settings: DoctorSettings, **kwargs: object) -> dict[str, Finding]:
    findings = Doctor(stack.agent_dir("agent"), settings, **kwargs).run()  # type: ignore[arg-type]
    return {finding.check: finding for finding in findings}


def only(findings: dict[str, Finding], prefix: str) -> Finding:
    [found] = [f for name, f in findings.items() if name.startswith(prefix)]
    return found


def test_a_healthy_setup_passes_every_check(stack: Stack, settings: DoctorSettings) -> None:
    findings = run(stack, settings)
    assert {f.severity for name, f in findings.items() if name != "tls"} == {"ok"}, findings
    assert only(findings, "printer ZD421-DOC").detail.startswith("printer ZD421-DOC is ready")
    assert "800 g, stable" in only(findings, "scale on").detail
    assert findings["clock"].severity == "ok"
    # A plaintext link works but is worth a warning, with the config key to set.
    assert findings["tls"].severity == "warn"
    assert "tls_ca" in findings["tls"].fix


def test_the_command_prints_json_and_exits_0_when_healthy(stack: Stack, settings: DoctorSettings) -> None:
    result = CliRunner().invoke(
        doctor_command,
        ["--data-dir", str(stack.agent_dir("agent")), "--agent-url", settings.agent_url, "--json"],
        env={"DOCKSIDE_AGENT_CONFIG": ""},
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["healthy"] is True
    assert {f["check"] for f in body["findings"]} >= {"disk", "enrolled", "outbox", "cloud", "clock"}


def test_not_enrolled_says_how_to_enroll(tmp_path: Path, settings: DoctorSettings) -> None:
    findings = {f.check: f for f in Doctor(tmp_path / "nothing", settings).run()}
    assert findings["enrolled"].severity == "fail"
    assert "dockside-agent enroll" in findings["enrolled"].fix
    result = CliRunner().invoke(
        doctor_command, ["--data-dir", str(tmp_path / "nothing")], env={"DOCKSIDE_AGENT_CONFIG": ""}
    )
    assert result.exit_code == 1
    assert "[FAIL] enrolled" in result.output
    assert "-> enroll this PC" in result.output


def test_an_unreachable_cloud_fails_with_what_to_check(stack: Stack, settings: DoctorSettings) -> None:
    findings = run(stack, replace(settings, cloud=f"127.0.0.1:{_closed_port()}"))
    assert findings["cloud"].severity == "fail"
    assert "cannot reach the cloud" in findings["cloud"].detail
    assert "firewall" in findings["cloud"].fix
    assert only(findings, "printer").severity == "ok"  # devices are still checked


def test_a_refused_credential_says_to_enroll_again(
    stack: Stack, settings: DoctorSettings, tmp_path: Path
) -> None:
    copy = tmp_path / "agent"
    shutil.copytree(stack.agent_dir("agent"), copy)
    store = Store.open(copy)
    with store.atomic():
        store.conn.execute("UPDATE identity SET credential = 'dsa_not-a-real-credential'")
    store.close()
    findings = {f.check: f for f in Doctor(copy, settings).run()}
    assert findings["credential"].severity == "fail"
    assert "enroll again" in findings["credential"].fix


@pytest.mark.parametrize(("offset_s", "severity"), [(5.0, "warn"), (-120.0, "fail")])
def test_clock_skew_is_measured_against_the_cloud(
    stack: Stack, settings: DoctorSettings, offset_s: float, severity: str
) -> None:
    findings = run(stack, settings, clock=lambda: time.time() + offset_s)
    clock = findings["clock"]
    assert clock.severity == severity
    assert ("ahead of" if offset_s > 0 else "behind") in clock.detail
    assert "time sync" in clock.fix


@pytest.mark.parametrize("fault", ["offline", "paper_out"])
def test_a_printer_that_cannot_print_fails_with_the_fix(
    stack: Stack, settings: DoctorSettings, fault: str
) -> None:
    stack.control("printer", "POST", "/fault", {"fault": fault})
    try:
        printer = only(run(stack, settings), "printer ZD421-DOC")
    finally:
        stack.control("printer", "POST", "/fault", {"fault": "none"})
    assert printer.severity == "fail"
    if fault == "offline":
        assert "does not answer" in printer.detail
        assert "check that the printer is on" in printer.fix
    else:
        assert "paper_out" in printer.detail
        assert printer.fix  # the printer's own words on what to load


def test_a_silent_scale_fails_with_the_fix(stack: Stack, settings: DoctorSettings) -> None:
    stack.control("scale", "POST", "/mode", {"silent": True})
    try:
        scale = only(run(stack, settings), "scale on")
    finally:
        stack.control("scale", "POST", "/mode", {"silent": False})
    assert scale.severity == "fail"
    assert "does not answer" in scale.detail
    assert scale.fix


def test_low_disk_space_fails(stack: Stack, settings: DoctorSettings) -> None:
    findings = run(stack, replace(settings, disk_fail_bytes=2**62))
    assert findings["disk"].severity == "fail"
    assert "free at least" in findings["disk"].fix


def test_a_deep_outbox_and_dead_letters_are_reported(
    stack: Stack, settings: DoctorSettings, tmp_path: Path
) -> None:
    copy = tmp_path / "agent"
    shutil.copytree(stack.agent_dir("agent"), copy)
    store = Store.open(copy)
    outbox = Outbox(store)
    with store.atomic():
        for n in range(3):
            outbox.record(EventKind.ORDER_PACKED, {"order_ref": f"DOC-{n}"}, order_ref=f"DOC-{n}")
    store.close()
    findings = {f.check: f for f in Doctor(copy, replace(settings, outbox_fail=3)).run()}
    assert findings["outbox"].severity == "fail"
    assert "3 event(s) waiting" in findings["outbox"].detail


def test_a_running_agent_is_asked_for_its_devices(stack: Stack, settings: DoctorSettings) -> None:
    stack.start_agent()
    try:
        findings = run(stack, replace(settings, agent_url=stack.agent_url()))
    finally:
        stack.processes["agent"].stop()
    assert "as the running agent sees it" in only(findings, "scale on").detail


# -- TLS: a real TLS listener with throwaway certificates ------------------------------------


def _certificate(
    tmp_path: Path,
    name: str,
    *,
    days: int,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
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
        .not_valid_after(now + dt.timedelta(days=days))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert, key


@pytest.fixture
def tls_listener(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """A TLS server on localhost whose certificate expires in 5 days: (port, its CA, another CA)."""
    ca_path, _, ca_cert, ca_key = _certificate(tmp_path, "ca", days=365, issuer=None)
    other_ca, *_ = _certificate(tmp_path, "other-ca", days=365, issuer=None)
    server_cert, server_key, *_ = _certificate(tmp_path, "server", days=5, issuer=(ca_cert, ca_key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True) as secured:
                    secured.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1]), ca_path, other_ca
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_tls_signed_by_another_ca_fails(
    stack: Stack, settings: DoctorSettings, tls_listener: tuple[int, Path, Path]
) -> None:
    port, _, other_ca = tls_listener
    findings = run(stack, replace(settings, cloud=f"localhost:{port}", tls=CloudTls(ca=other_ca)))
    assert findings["tls"].severity == "fail"
    assert "not trusted" in findings["tls"].detail
    assert "tls_ca" in findings["tls"].fix


def test_tls_expiring_soon_warns(
    stack: Stack, settings: DoctorSettings, tls_listener: tuple[int, Path, Path]
) -> None:
    port, ca, _ = tls_listener
    findings = run(stack, replace(settings, cloud=f"localhost:{port}", tls=CloudTls(ca=ca)))
    assert findings["tls"].severity == "warn"
    assert "expires in 4 day(s)" in findings["tls"].detail
