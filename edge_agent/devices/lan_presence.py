"""The agent on the warehouse LAN: it announces itself as `_dockside._tcp` and watches for printers.

While the agent runs (unless `advertise` is off), one zeroconf instance advertises the agent
(id, warehouse, version, the station page's port) so 3PL IT and station tablets can find it, and
browses the printer services. Printers seen that no station uses yet are reported to the cloud
(`ReportStatus.devices`, state `discovered`) so an admin can add them from the console. A printer
is known by its serial number or MAC, so one that moves to a new address is the same printer.

Everything zeroconf does is blocking network work: `start` and `stop` run in a thread, never on
the agent's event loop.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable

from zeroconf import IPVersion, Zeroconf

from edge_agent.devices.discovery import AgentAdvertisement, PrinterBrowser, PrinterCandidate

__all__ = ["LanPresence"]

log = logging.getLogger(__name__)


class LanPresence:
    """The agent's advertisement and printer browser on one zeroconf instance."""

    def __init__(
        self,
        agent_id: str,
        port: int,
        *,
        warehouse: str,
        version: str,
        host: str = "127.0.0.1",
        interfaces: list[str] | None = None,
    ) -> None:
        self._agent_id = agent_id
        self._port = port
        self._warehouse = warehouse
        self._version = version
        # A wildcard bind is reachable at this PC's own address; loopback stays loopback.
        self._address = _announced_address(host)
        self._interfaces = interfaces
        self._zeroconf: Zeroconf | None = None
        self._advertisement: AgentAdvertisement | None = None
        self._browser: PrinterBrowser | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Announce the agent and start browsing (blocking: call from a thread); never raises.

        A PC without multicast (a locked-down network, a container) still packs: the agent
        logs why it is not on the LAN and goes on.
        """
        try:
            self._start()
        except Exception as exc:  # zeroconf raises many kinds (OSError, its own, ValueError)
            log.warning("the agent is not advertised on the LAN (%r): station pages need its address", exc)
            self.stop()

    def _start(self) -> None:
        with self._lock:
            if self._zeroconf is not None:
                return
            zeroconf = (
                Zeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
                if self._interfaces is not None
                else Zeroconf(ip_version=IPVersion.V4Only)
            )
            self._zeroconf = zeroconf
            self._advertisement = AgentAdvertisement(
                f"dockside-agent {self._agent_id}",
                self._port,
                addresses=[self._address],
                properties={
                    "agent_id": self._agent_id,
                    "warehouse": self._warehouse,
                    "version": self._version,
                },
                zeroconf=zeroconf,
            )
            self._browser = PrinterBrowser(zeroconf=zeroconf)
            self._advertisement.start()
            self._browser.start()
        log.info("advertising the agent as _dockside._tcp on %s:%d", self._address, self._port)

    def printers(self) -> list[PrinterCandidate]:
        """The printers seen on the LAN so far."""
        browser = self._browser
        return browser.candidates() if browser is not None else []

    def unconfigured(self, configured: Iterable[str]) -> list[PrinterCandidate]:
        """Printers seen whose id and address no station uses."""
        known = set(configured)
        return [
            printer
            for printer in self.printers()
            if printer.id not in known and f"{printer.host}:{printer.port}" not in known
        ]

    def stop(self) -> None:
        """Leave the LAN (blocking: call from a thread)."""
        with self._lock:
            zeroconf, self._zeroconf = self._zeroconf, None
            if self._browser is not None:
                self._browser.stop()
            if self._advertisement is not None:
                self._advertisement.stop()
            self._browser = self._advertisement = None
            if zeroconf is not None:
                zeroconf.close()


def _announced_address(host: str) -> str:
    if host in ("0.0.0.0", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"
    try:
        socket.inet_aton(host)
    except OSError:
        return "127.0.0.1"  # an IPv6 or name bind: announce loopback rather than nothing
    return host
