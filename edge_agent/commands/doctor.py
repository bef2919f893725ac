"""`dockside-agent doctor`: everything IT checks on a packing PC, each failure with what to do.

Checks, in order: the agent is enrolled; the cloud answers on its sync address; TLS to it is
valid (when configured); the cloud accepts the agent's credential and its clock agrees with
ours; every configured printer and scale answers; the data dir's disk has room; the outbox is
not piling up. A finding is `ok`, `warn` (works, but look at it) or `fail` (packing or sync is
at risk); the command exits 1 when anything failed.

Devices are asked directly, unless the agent is running (its local API answers): it holds the
printers' connections and the scales' serial ports, so then the doctor reads what the agent
last saw instead of fighting it for the ports. The credential and clock check sends one status
report, with the devices as found, which is what the agent itself sends every half minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
import httpx

from dockside.errors import AuthError, DocksideError
from dockside.v1 import sync_pb2 as pb
from edge_agent import __version__
from edge_agent.commands.agent_setup import Refused, agent_setup, config_option, data_dir_option
from edge_agent.devices import PrinterConfig, ScaleConfig
from edge_agent.devices.printer_drivers import status_once
from edge_agent.devices.scale_drivers import weigh_once
from edge_agent.http.local_credentials import read_local_token
from edge_agent.store.cache import Cache
from edge_agent.store.database import DB_FILENAME, Store
from edge_agent.store.outbox import Outbox
from edge_agent.sync import GrpcTransport
from edge_agent.sync.cloud_tls import CloudTls
from edge_agent.sync.identity import Identity, load_identity

__all__ = ["Doctor", "DoctorSettings", "Finding", "doctor_command", "render_text"]

Severity = Literal["ok", "warn", "fail"]
StationEntry = TypeVar("StationEntry", PrinterConfig, ScaleConfig)


@dataclass(frozen=True)
class Finding:
    """One check's result: what was checked, how it went, and what to do about it."""

    check: str
    severity: Severity
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorSettings:
    """Where to look and what counts as trouble; the defaults suit a packing PC."""

    cloud: str = ""  # empty: the address stored at enrollment
    tls: CloudTls = field(default_factory=CloudTls)
    agent_url: str = "http://127.0.0.1:8100"
    timeout_s: float = 3.0
    clock_warn_s: float = 2.0
    clock_fail_s: float = 30.0
    disk_warn_bytes: int = 2 * 1024**3
    disk_fail_bytes: int = 500 * 1024**2
    outbox_warn: int = 1_000
    outbox_fail: int = 50_000
    cert_warn_days: int = 14


class Doctor:
    """Runs every check against one data dir; `clock` is injectable so skew can be tested."""

    def __init__(
        self, folder: Path, settings: DoctorSettings | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.folder = folder
        self.settings = settings or DoctorSettings()
        self.clock = clock

    def run(self) -> list[Finding]:
        """Every finding, most basic first."""
        findings: list[Finding] = []
        findings.append(self._disk())
        if not (self.folder / DB_FILENAME).exists():
            findings.append(_not_enrolled(self.folder))
            return findings
        store = Store.open(self.folder)
        try:
            identity = load_identity(store)
            if identity is None:
                findings.append(_not_enrolled(self.folder))
                return findings
            findings.append(
                Finding("enrolled", "ok", f"agent {identity.agent_id} of warehouse {identity.warehouse}")
            )
            findings.extend(self._outbox(store))
            device_findings, devices = self._devices(store)
            findings.extend(self._cloud(identity, store, devices))
            findings.extend(device_findings)
        finally:
            store.close()
        return findings

    # -- the machine -------------------------------------------------------------------------

    def _disk(self) -> Finding:
        s = self.settings
        probe = self.folder if self.folder.exists() else _existing_parent(self.folder)
        free = shutil.disk_usage(probe).free
        detail = f"{free / 1024**3:.1f} GB free on the disk of {self.folder}"
        if free < s.disk_fail_bytes:
            return Finding(
                "disk",
                "fail",
                detail,
                f"free at least {s.disk_fail_bytes // 1024**2} MB (old logs, downloads): the agent stops "
                "recording packs when the disk is full",
            )
        if free < s.disk_warn_bytes:
            return Finding("disk", "warn", detail, "free some space soon (old logs, downloads)")
        return Finding("disk", "ok", detail)

    def _outbox(self, store: Store) -> list[Finding]:
        s = self.settings
        outbox = Outbox(store)
        depth, dead = outbox.depth(), outbox.dead_letter_count()
        findings = []
        detail = f"{depth} event(s) waiting for the cloud"
        if depth >= s.outbox_fail:
            findings.append(
                Finding(
                    "outbox",
                    "fail",
                    detail,
                    "the agent has not reached the cloud for a long time: fix the cloud checks above; "
                    "events are kept and sent when it is back",
                )
            )
        elif depth >= s.outbox_warn:
            findings.append(
                Finding(
                    "outbox", "warn", detail, "events pile up: check the cloud link (see the cloud checks)"
                )
            )
        else:
            findings.append(Finding("outbox", "ok", detail))
        if dead:
            findings.append(
                Finding(
                    "dead letters",
                    "warn",
                    f"{dead} event(s) the cloud refused for good",
                    "run `dockside-agent status` and send its output to IT: a person must look at them",
                )
            )
        return findings

    # -- the cloud ---------------------------------------------------------------------------

    def _cloud(self, identity: Identity, store: Store, devices: list[pb.DeviceStatus]) -> list[Finding]:
        address = self.settings.cloud or identity.cloud
        host, _, port_text = address.rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port_text)), timeout=self.settings.timeout_s):
                pass
        except (OSError, ValueError) as exc:
            return [
                Finding(
                    "cloud",
                    "fail",
                    f"cannot reach the cloud at {address} ({_reason(exc)})",
                    "check the network cable/Wi-Fi and the firewall (outgoing TCP to that port), and "
                    "that [cloud] address in the agent's config is right; packing goes on offline meanwhile",
                )
            ]
        findings = [Finding("cloud", "ok", f"the cloud answers at {address}")]
        tls = self.settings.tls
        if tls.enabled:
            tls_finding = self._tls(host, int(port_text), tls)
            findings.append(tls_finding)
            if tls_finding.severity == "fail":
                return findings
        else:
            findings.append(
                Finding(
                    "tls",
                    "warn",
                    "the link to the cloud is not encrypted",
                    "set [cloud] tls_ca (and tls_cert/tls_key if the cloud wants them) in the config",
                )
            )
        findings.extend(self._credential_and_clock(address, identity, store, devices))
        return findings

    def _tls(self, host: str, port: int, tls: CloudTls) -> Finding:
        context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
        if tls.cert is not None:
            try:
                context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
            except (OSError, ssl.SSLError) as exc:
                return Finding(
                    "tls",
                    "fail",
                    f"cannot use the client certificate {tls.cert} ({_reason(exc)})",
                    "point [cloud] tls_cert and tls_key at the PEM pair IT issued for this PC",
                )
        try:
            with (
                socket.create_connection((host, port), timeout=self.settings.timeout_s) as raw,
                context.wrap_socket(raw, server_hostname=host) as secured,
            ):
                cert = secured.getpeercert() or {}
        except ssl.SSLCertVerificationError as exc:
            return Finding(
                "tls",
                "fail",
                f"the cloud's certificate is not trusted ({exc.verify_message or _reason(exc)})",
                "make [cloud] tls_ca the CA that signed the cloud's certificate, and use the name on that "
                "certificate in [cloud] address; if it expired, IT must renew it",
            )
        except (OSError, ssl.SSLError) as exc:
            return Finding(
                "tls",
                "fail",
                f"no TLS handshake with the cloud ({_reason(exc)})",
                "check that the cloud serves TLS on this port, or drop the [cloud] tls_* keys if not",
            )
        not_after = cert.get("notAfter")
        if isinstance(not_after, str):
            expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC)
            days = (expires - dt.datetime.fromtimestamp(self.clock(), dt.UTC)).days
            if days < self.settings.cert_warn_days:
                return Finding(
                    "tls",
                    "warn",
                    f"the cloud's certificate expires in {days} day(s)",
                    "ask IT to renew the cloud's certificate before it expires",
                )
            return Finding("tls", "ok", f"the cloud's certificate is valid for {days} more days")
        return Finding("tls", "ok", "the cloud's certificate is valid")

    def _credential_and_clock(
        self, address: str, identity: Identity, store: Store, devices: list[pb.DeviceStatus]
    ) -> list[Finding]:
        credentials = self.settings.tls.credentials()
        request = pb.ReportStatusRequest(
            agent_version=__version__,
            revision=store.revision(),
            outbox_depth=Outbox(store).depth(),
            devices=devices,
            sent_at_ms=int(self.clock() * 1000),
        )

        async def report() -> tuple[float, pb.ReportStatusResponse, float]:
            transport = GrpcTransport(address, identity.credential, channel_credentials=credentials)
            try:
                sent = self.clock()
                answer = await transport.report_status(request)
                return sent, answer, self.clock()
            finally:
                await transport.close()

        try:
            sent, answer, received = asyncio.run(report())
        except AuthError as exc:
            return [
                Finding(
                    "credential",
                    "fail",
                    f"the cloud refused this agent's credential ({exc.message})",
                    "the agent was revoked or the cloud's data was reset: enroll again with a new "
                    "token from the cloud console (`dockside-agent enroll`)",
                )
            ]
        except DocksideError as exc:
            return [
                Finding(
                    "credential",
                    "fail",
                    f"the cloud did not answer a status report ({exc.message})",
                    "check that the address is the cloud's gRPC sync port, not its web port",
                )
            ]
        findings = [Finding("credential", "ok", "the cloud accepts this agent's credential")]
        skew = answer.server_time_ms / 1000 - (sent + received) / 2
        detail = f"this PC's clock is {abs(skew):.1f} s {'behind' if skew > 0 else 'ahead of'} the cloud"
        fix = (
            "turn on automatic time sync (Linux: `timedatectl set-ntp true`; Windows: "
            "`w32tm /resync`): label dates and event times come from this clock"
        )
        if abs(skew) >= self.settings.clock_fail_s:
            findings.append(Finding("clock", "fail", detail, fix))
        elif abs(skew) >= self.settings.clock_warn_s:
            findings.append(Finding("clock", "warn", detail, fix))
        else:
            findings.append(Finding("clock", "ok", detail))
        return findings

    # -- the devices -------------------------------------------------------------------------

    def _devices(self, store: Store) -> tuple[list[Finding], list[pb.DeviceStatus]]:
        cache = Cache(store)
        cache.load()
        stations = dict(cache.stations)
        if not stations:
            return [
                Finding(
                    "stations",
                    "warn",
                    "no station is configured for this warehouse yet",
                    "add stations with their printers and scales in the cloud console",
                )
            ], []
        running = self._running_agent()
        if running is not None:
            return _devices_from_agent(running)
        findings: list[Finding] = []
        devices: list[pb.DeviceStatus] = []
        for code, body in sorted(stations.items()):
            for entry in body.get("printers") or []:
                finding, device = self._printer(code, entry)
                findings.append(finding)
                if device is not None:
                    devices.append(device)
            if body.get("scale"):
                finding, device = self._scale(code, body["scale"])
                findings.append(finding)
                if device is not None:
                    devices.append(device)
        return findings, devices

    def _running_agent(self) -> dict[str, Any] | None:
        try:
            token = read_local_token(self.folder) or ""
            answer = httpx.get(
                f"{self.settings.agent_url}/api/v1/status",
                headers={"authorization": f"Bearer {token}"},
                timeout=self.settings.timeout_s,
            )
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        body = answer.json()
        return body if isinstance(body, dict) and "stations" in body else None

    def _printer(self, station: str, entry: Any) -> tuple[Finding, pb.DeviceStatus | None]:
        config = _station_entry(PrinterConfig, entry, f"printer at {station}")
        if isinstance(config, Finding):
            return config, None
        check = f"printer {config.id} ({station})"
        try:
            status = status_once(config)
        except DocksideError as exc:
            return (
                Finding(check, "fail", f"does not answer at {config.address}", exc.message),
                _device(config.id, "printer", station, config.model, config.address, "offline", exc.message),
            )
        device = _device(
            config.id, "printer", station, config.model, config.address, status.state, status.message
        )
        if status.ready:
            return Finding(check, "ok", status.message), device
        return Finding(
            check, "fail", f"answers but cannot print ({', '.join(sorted(status.faults))})", status.message
        ), device

    def _scale(self, station: str, entry: Any) -> tuple[Finding, pb.DeviceStatus | None]:
        config = _station_entry(ScaleConfig, entry, f"scale at {station}")
        if isinstance(config, Finding):
            return config, None
        check = f"scale on {config.port} ({station})"
        try:
            weight = weigh_once(config)
        except DocksideError as exc:
            return (
                Finding(check, "fail", f"does not answer ({exc.code})", exc.message),
                _device(config.port, "scale", station, config.protocol, config.port, "fault", exc.message),
            )
        detail = f"answers: {weight.grams} g, {'stable' if weight.stable else 'settling'}"
        return Finding(check, "ok", detail), _device(
            config.port, "scale", station, config.protocol, config.port, "ready", detail
        )


def _station_entry(kind: type[StationEntry], entry: Any, check: str) -> StationEntry | Finding:
    """A station's printer or scale entry, checked; the failed finding `check` when it is wrong."""
    try:
        return kind.from_dict(entry)
    except DocksideError as exc:
        return Finding(check, "fail", exc.message, "fix the station in the cloud console")


def _devices_from_agent(status: Mapping[str, Any]) -> tuple[list[Finding], list[pb.DeviceStatus]]:
    findings: list[Finding] = []
    devices: list[pb.DeviceStatus] = []
    for station in status.get("stations", []):
        code = station.get("code", "?")
        for printer in station.get("printers", []):
            state, message = printer.get("state", "unknown"), printer.get("message", "")
            check = f"printer {printer.get('id')} ({code})"
            severity: Severity = "ok" if state == "ready" else ("warn" if state == "unknown" else "fail")
            findings.append(
                Finding(
                    check,
                    severity,
                    f"{state}, as the running agent sees it",
                    "" if severity == "ok" else message,
                )
            )
            devices.append(
                _device(
                    printer.get("hardware_id") or printer.get("id", ""),
                    "printer",
                    code,
                    printer.get("model", ""),
                    printer.get("address", ""),
                    state,
                    message,
                )
            )
        scale = station.get("scale")
        if scale:
            ok = scale.get("state") == "ok"
            check = f"scale on {scale.get('port')} ({code})"
            findings.append(
                Finding(
                    check,
                    "ok" if ok else "fail",
                    f"{scale.get('state')}, as the running agent sees it",
                    "" if ok else str(scale.get("message", "")),
                )
            )
            devices.append(
                _device(
                    str(scale.get("port", "")),
                    "scale",
                    code,
                    str(scale.get("protocol", "")),
                    str(scale.get("port", "")),
                    "ready" if ok else "fault",
                    str(scale.get("message", "")),
                )
            )
    return findings, devices


def _device(
    device_id: str, kind: str, station: str, model: str, address: str, state: str, message: str
) -> pb.DeviceStatus:
    return pb.DeviceStatus(
        id=device_id, kind=kind, station=station, model=model, address=address, state=state, message=message
    )


def _not_enrolled(folder: Path) -> Finding:
    return Finding(
        "enrolled",
        "fail",
        f"no enrolled agent in {folder}",
        "enroll this PC: `dockside-agent enroll --cloud HOST:PORT --token TOKEN` with a token from the "
        "cloud console (or pass --data-dir if the agent keeps its data elsewhere)",
    )


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path.cwd()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def render_text(findings: list[Finding]) -> str:
    """The findings for a person: one line each, a fix under each problem, then a summary."""
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for finding in findings:
        lines.append(f"[{marks[finding.severity]}] {finding.check}: {finding.detail}")
        if finding.fix:
            lines.append(f"       -> {finding.fix}")
    failed = sum(f.severity == "fail" for f in findings)
    warned = sum(f.severity == "warn" for f in findings)
    lines.append(
        f"{failed} problem(s), {warned} warning(s)" if failed or warned else "everything looks healthy"
    )
    return "\n".join(lines)


@click.command("doctor")
@data_dir_option
@config_option("The agent's TOML configuration, for the cloud address and TLS files. Default: as `run`.")
@click.option(
    "--agent-url",
    default="http://127.0.0.1:8100",
    show_default=True,
    help="Where a running agent's local API answers (its devices are then read from it).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60.0),
    default=3.0,
    show_default=True,
    help="Seconds to wait for each network answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def doctor_command(
    data_dir: Path | None, config_path: Path | None, agent_url: str, timeout: float, as_json: bool
) -> None:
    """Check everything this PC needs (cloud, TLS, clock, printers, scales, disk, outbox) and say what to fix.

    Exits 1 when a check failed, 0 when everything passed (warnings included).
    """
    # The same files `run` would use: the config's [cloud] keys, else enrollment's record.
    setup = agent_setup(config_path, data_dir)
    settings = DoctorSettings(
        cloud=setup.config.cloud.address,
        tls=setup.tls,
        agent_url=agent_url.rstrip("/"),
        timeout_s=timeout,
    )
    try:
        findings = Doctor(setup.folder, settings).run()
    except DocksideError as exc:
        raise Refused(exc.message) from None
    failed = any(f.severity == "fail" for f in findings)
    if as_json:
        click.echo(json.dumps({"healthy": not failed, "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        click.echo(render_text(findings))
    if failed:
        raise SystemExit(1)
