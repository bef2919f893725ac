"""A zeroconf browser on loopback finds an advertising mock printer, keyed by its serial number."""

from __future__ import annotations

import threading
import uuid

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from hardware_mocks import MockPrinter


class _Collector(ServiceListener):
    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.found: dict[str, dict] = {}
        self.event = threading.Event()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None or info.properties.get(b"serial") != self.serial.encode():
            return
        self.found[type_] = {
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "properties": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
        }
        if len(self.found) == 2:
            self.event.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        """Nothing to do: the test only looks for arrivals."""


def test_browser_finds_the_printer_with_serial_and_model():
    serial = f"ZC{uuid.uuid4().hex[:8].upper()}"
    printer = MockPrinter(port=0, control_port=0, serial=serial, model="ZD621", advertise=True).start()
    browser_zeroconf = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    collector = _Collector(serial)
    browsers = [
        ServiceBrowser(browser_zeroconf, service_type, collector)
        for service_type in ("_pdl-datastream._tcp.local.", "_printer._tcp.local.")
    ]
    try:
        assert collector.event.wait(15), f"browser found only {sorted(collector.found)}"
        pdl = collector.found["_pdl-datastream._tcp.local."]
        assert pdl["port"] == printer.port
        assert pdl["addresses"] == ["127.0.0.1"]
        assert pdl["properties"]["serial"] == serial
        assert pdl["properties"]["model"] == "ZD621"
        assert pdl["properties"]["usb_MDL"] == "ZD621"
        assert collector.found["_printer._tcp.local."]["properties"]["serial"] == serial
    finally:
        for browser in browsers:
            browser.cancel()
        browser_zeroconf.close()
        printer.stop()
