"""Zeroconf (mDNS/DNS-SD) announcements for a mock printer, as a networked label printer makes them.

The printer is announced as `_pdl-datastream._tcp.local.` (raw port 9100 printing) and
`_printer._tcp.local.`, with the Bonjour printing TXT keys (`txtvers`, `ty`, `product`, `pdl`,
`usb_MFG`, `usb_MDL`) plus `serial` and `model`, so discovery can key the printer by its serial
number. On a loopback host the announcements stay on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Protocol

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from hardware_mocks.printer_languages import PrinterLanguage

__all__ = ["SERVICE_TYPES", "AdvertisedPrinter", "PrinterAdvertiser"]

SERVICE_TYPES = ("_pdl-datastream._tcp.local.", "_printer._tcp.local.")
_MANUFACTURERS = {"zpl": "Zebra Technologies", "escpos": "EPSON"}
_PDL = {"zpl": "application/vnd.zebra-zpl", "escpos": "application/vnd.epson.escpos"}


class AdvertisedPrinter(Protocol):
    """What an announcement says of a printer (`MockPrinter`, once it listens)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def serial(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def language(self) -> PrinterLanguage: ...


class PrinterAdvertiser:
    """Announces one printer over zeroconf until stopped."""

    def __init__(self, printer: AdvertisedPrinter, interfaces: list[str] | None = None) -> None:
        self._printer = printer
        self._interfaces = interfaces
        self._zeroconf: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []

    def _interface_choice(self) -> list[str] | InterfaceChoice:
        if self._interfaces is not None:
            return self._interfaces
        host = self._printer.host
        if host in ("", "0.0.0.0", "::"):
            return InterfaceChoice.All
        return [host]

    def _addresses(self) -> list[bytes]:
        host = self._printer.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        address = ipaddress.ip_address(host)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return [socket.inet_pton(family, str(address))]

    def service_infos(self) -> list[AsyncServiceInfo]:
        """What is announced: one record per service type."""
        printer = self._printer
        language = printer.language.name
        instance = f"{printer.model} {printer.serial}"
        hostname = re.sub(r"[^A-Za-z0-9-]", "-", f"dockside-mock-{printer.serial}").lower()
        properties = {
            "txtvers": "1",
            "qtotal": "1",
            "ty": f"{_MANUFACTURERS.get(language, '')} {printer.model}".strip(),
            "product": f"({printer.model})",
            "pdl": _PDL.get(language, "application/octet-stream"),
            "usb_MFG": _MANUFACTURERS.get(language, ""),
            "usb_MDL": printer.model,
            "serial": printer.serial,
            "model": printer.model,
            "language": language,
            "note": "Dockside mock printer",
        }
        return [
            AsyncServiceInfo(
                service_type,
                f"{instance}.{service_type}",
                addresses=self._addresses(),
                port=printer.port,
                properties=properties,
                server=f"{hostname}.local.",
            )
            for service_type in SERVICE_TYPES
        ]

    async def start(self) -> None:
        """Register the services (announcements continue in the background)."""
        ip_version = IPVersion.V6Only if ":" in self._printer.host else IPVersion.V4Only
        self._zeroconf = AsyncZeroconf(interfaces=self._interface_choice(), ip_version=ip_version)
        self._infos = self.service_infos()
        for info in self._infos:
            await self._zeroconf.async_register_service(info, allow_name_change=True)

    async def stop(self) -> None:
        """Say goodbye and close the sockets."""
        if self._zeroconf is None:
            return
        try:
            await self._zeroconf.async_unregister_all_services()
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None
