"""Finding printers and scales without a driver hunt, and announcing the agent on the LAN.

Printers: zeroconf browsing of `_pdl-datastream._tcp` (raw 9100 printing), `_printer._tcp`
(LPD) and `_ipp._tcp`. A candidate's id comes from its TXT properties (serial number, MAC,
UUID) when the printer publishes one, so a printer that gets a new address from DHCP is the same
printer with a new host, not a second printer. The agent advertises itself as `_dockside._tcp`.

Scales: every serial port pyserial lists, plus paths given explicitly (a pty, a symlink), is
probed protocol by protocol; the first protocol the port answers in names it, e.g.
"Toledo 8217 on /dev/ttyUSB0".
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from serial.tools import list_ports
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from dockside.errors import ScaleError, ScalePortLost, ScaleWithoutWeight

from .config import PrinterConfig, ScaleConfig
from .scale import PROTOCOL_NAMES
from .scale_drivers import weigh_once

__all__ = [
    "AGENT_SERVICE",
    "PRINTER_SERVICES",
    "AgentAdvertisement",
    "PrinterBrowser",
    "PrinterCandidate",
    "ScaleCandidate",
    "discover_printers",
    "discover_scales",
    "printer_candidate",
    "probe_scale",
    "serial_ports",
]

log = logging.getLogger(__name__)

RAW_SERVICE = "_pdl-datastream._tcp.local."
PRINTER_SERVICES = (RAW_SERVICE, "_printer._tcp.local.", "_ipp._tcp.local.")
AGENT_SERVICE = "_dockside._tcp.local."
# TXT keys that carry a hardware id, best first; compared without case.
_ID_KEYS = ("serial", "serialnumber", "sn", "usb_ser", "mac", "macaddress", "uuid")
_MODEL_KEYS = ("usb_mdl", "product", "ty", "model")


@dataclass(frozen=True)
class PrinterCandidate:
    """A printer seen on the network: its stable id, where to reach it, and what it said."""

    id: str
    name: str
    host: str
    port: int
    service_type: str
    model: str = ""
    language: str | None = None  # "zpl" or "escpos" when the printer says enough to tell
    properties: Mapping[str, str] = field(default_factory=dict, compare=False)
    stable_id: bool = True  # False when the id is only the mDNS name (no serial or MAC published)

    def to_config(self, *, printer_id: str | None = None, role: str = "label") -> PrinterConfig:
        """A station printer entry for this candidate (raw TCP printing)."""
        return PrinterConfig(
            id=printer_id or self.id,
            language=self.language or "zpl",
            host=self.host,
            port=self.port if self.service_type == RAW_SERVICE else 9100,
            model=self.model,
            role=role,
        )


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace").strip() if value else ""


def _guess_language(model: str, properties: Mapping[str, str]) -> str | None:
    said = " ".join([model, properties.get("pdl", ""), properties.get("usb_cmd", "")]).lower()
    if "zpl" in said or "zebra" in said:
        return "zpl"
    if "esc/pos" in said or "escpos" in said or "epson tm" in said or "tm-" in said:
        return "escpos"
    return None


def printer_candidate(info: ServiceInfo) -> PrinterCandidate | None:
    """What a resolved zeroconf service says about a printer; None without an IPv4 address."""
    addresses = [str(ipaddress.ip_address(raw)) for raw in info.addresses if len(raw) == 4]
    if not addresses or info.port is None:
        return None
    properties = {_text(key).lower(): _text(value) for key, value in (info.properties or {}).items() if key}
    instance = info.name.removesuffix("." + info.type).strip() if info.type else info.name
    hardware_id = next((properties[key] for key in _ID_KEYS if properties.get(key)), "")
    if hardware_id and any(key in properties for key in ("mac", "macaddress")) and ":" in hardware_id:
        hardware_id = hardware_id.lower()
    model = next((properties[key] for key in _MODEL_KEYS if properties.get(key)), "")
    return PrinterCandidate(
        id=hardware_id or f"mdns:{instance}",
        name=instance,
        host=addresses[0],
        port=info.port,
        service_type=info.type,
        model=model,
        language=_guess_language(model, properties),
        properties=properties,
        stable_id=bool(hardware_id),
    )


class PrinterBrowser:
    """Keeps the printers on the LAN current, keyed by stable id, from zeroconf's browser thread."""

    def __init__(
        self,
        *,
        zeroconf: Zeroconf | None = None,
        interfaces: list[str] | None = None,
        on_change: Callable[[PrinterCandidate], None] | None = None,
        resolve_timeout_ms: int = 1500,
    ) -> None:
        self._given = zeroconf
        self._interfaces = interfaces
        self._on_change = on_change
        self._resolve_timeout_ms = resolve_timeout_ms
        self._zeroconf: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None
        self._lock = threading.Condition()
        self._by_id: dict[str, PrinterCandidate] = {}
        self._id_of_name: dict[str, str] = {}

    def start(self) -> None:
        if self._browser is not None:
            return
        if self._given is not None:
            self._zeroconf = self._given
        elif self._interfaces is not None:
            self._zeroconf = Zeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        else:
            self._zeroconf = Zeroconf(ip_version=IPVersion.V4Only)
        self._browser = ServiceBrowser(self._zeroconf, list(PRINTER_SERVICES), listener=_Listener(self))

    def stop(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            browser.cancel()
        if self._zeroconf is not None and self._given is None:
            self._zeroconf.close()
        self._zeroconf = None

    def __enter__(self) -> PrinterBrowser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def candidates(self) -> list[PrinterCandidate]:
        """The printers seen so far, one per stable id, by name."""
        with self._lock:
            return sorted(self._by_id.values(), key=lambda c: (c.name, c.id))

    def wait_for(
        self, found: Callable[[list[PrinterCandidate]], bool], timeout_s: float
    ) -> list[PrinterCandidate]:
        """The candidates once `found(candidates)` holds, or when the time is up."""
        with self._lock:
            self._lock.wait_for(lambda: found(sorted(self._by_id.values(), key=lambda c: c.name)), timeout_s)
        return self.candidates()

    def _resolve(self, zc: Zeroconf, service_type: str, name: str) -> None:
        try:
            info = zc.get_service_info(service_type, name, timeout=self._resolve_timeout_ms)
        except Exception:  # a hostile or broken announcement must not stop the browser
            log.warning("could not resolve %s", name, exc_info=True)
            return
        candidate = printer_candidate(info) if info is not None else None
        if candidate is None:
            return
        with self._lock:
            known = self._by_id.get(candidate.id)
            # The raw-printing service wins: it is where labels go; IPP/LPD only fill gaps.
            if (
                known is not None
                and known.service_type == RAW_SERVICE
                and candidate.service_type != RAW_SERVICE
            ):
                candidate = replace(known, host=candidate.host) if known.host != candidate.host else known
            changed = known != candidate
            self._by_id[candidate.id] = candidate
            self._id_of_name[name] = candidate.id
            self._lock.notify_all()
        if changed and self._on_change is not None:
            self._on_change(candidate)

    def _forget(self, name: str) -> None:
        with self._lock:
            printer_id = self._id_of_name.pop(name, None)
            if printer_id is not None and printer_id not in self._id_of_name.values():
                self._by_id.pop(printer_id, None)
            self._lock.notify_all()


class _Listener(ServiceListener):
    def __init__(self, browser: PrinterBrowser) -> None:
        self._browser = browser

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._browser._resolve(zc, type_, name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._browser._resolve(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._browser._forget(name)


def discover_printers(
    timeout_s: float = 3.0, *, interfaces: list[str] | None = None
) -> list[PrinterCandidate]:
    """The printers that answer zeroconf within `timeout_s` (for `dockside-agent` setup)."""
    with PrinterBrowser(interfaces=interfaces) as browser:
        return browser.wait_for(lambda _: False, timeout_s)


class AgentAdvertisement:
    """The agent announced as `_dockside._tcp` so 3PL IT and station pages can find it."""

    def __init__(
        self,
        name: str,
        port: int,
        *,
        addresses: Iterable[str] = ("127.0.0.1",),
        properties: Mapping[str, str] | None = None,
        zeroconf: Zeroconf | None = None,
    ) -> None:
        # An mDNS instance name is at most 63 bytes; a dot would start a new label.
        instance = name.replace(".", "-")[:63]
        self.info = ServiceInfo(
            AGENT_SERVICE,
            f"{instance}.{AGENT_SERVICE}",
            addresses=[socket.inet_aton(address) for address in addresses],
            port=port,
            properties=dict(properties or {}),
            server=f"{instance.replace(' ', '-').lower()}.local.",
        )
        self._given = zeroconf
        self._zeroconf: Zeroconf | None = None

    def start(self) -> None:
        if self._zeroconf is None:
            self._zeroconf = self._given or Zeroconf(ip_version=IPVersion.V4Only)
            self._zeroconf.register_service(self.info, allow_name_change=True)

    def stop(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is not None:
            with contextlib.suppress(Exception):  # leaving the LAN must not fail a shutdown
                zc.unregister_service(self.info)
            if self._given is None:
                zc.close()

    def __enter__(self) -> AgentAdvertisement:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- scales ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleCandidate:
    """A serial port where a scale answered in a known protocol."""

    port: str
    protocol: str
    description: str

    def to_config(self) -> ScaleConfig:
        return ScaleConfig(protocol=self.protocol, port=self.port)


# Listening first: a CAS scale streams by itself, the others wait to be asked.
PROBE_ORDER = ("cas", "mt-sics", "nci-scp12", "toledo-8217")


def serial_ports(extra_paths: Iterable[str] = ()) -> list[str]:
    """The serial ports of this PC (pyserial) and the given paths, each once."""
    ports = [port.device for port in list_ports.comports()]
    return list(dict.fromkeys([*ports, *extra_paths]))


def probe_scale(
    path: str, *, protocols: Iterable[str] = PROBE_ORDER, timeout_s: float = 0.5
) -> ScaleCandidate | None:
    """The protocol a scale on `path` answers in, or None (no scale, or not one Dockside reads)."""
    for protocol in protocols:
        try:
            weigh_once(ScaleConfig(protocol=protocol, port=path), read_timeout_s=timeout_s)
        except ScalePortLost:
            return None  # no port there, or not ours to open: no protocol will do better
        except ScaleWithoutWeight:
            pass  # it answered in this protocol, only without a usable weight: the scale is found
        except ScaleError:
            continue  # silence, noise or a refused command: not this protocol
        return ScaleCandidate(
            port=path, protocol=protocol, description=f"{PROTOCOL_NAMES[protocol]} on {path}"
        )
    return None


def discover_scales(extra_paths: Iterable[str] = (), *, timeout_s: float = 0.5) -> list[ScaleCandidate]:
    """Every port of `serial_ports` where a scale answered, with its protocol."""
    found = [probe_scale(path, timeout_s=timeout_s) for path in serial_ports(extra_paths)]
    return [candidate for candidate in found if candidate is not None]
