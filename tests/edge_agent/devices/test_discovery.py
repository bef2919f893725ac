"""Discovery: zeroconf printers on loopback (real mDNS), agent advertising, scale probing on ptys."""

from __future__ import annotations

import socket
import uuid

import pytest
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from edge_agent.devices import ScaleConfig
from edge_agent.devices.discovery import (
    AGENT_SERVICE,
    RAW_SERVICE,
    AgentAdvertisement,
    PrinterBrowser,
    discover_scales,
    printer_candidate,
    probe_scale,
    serial_ports,
)
from tests.edge_agent.devices.conftest import PtyScalePeer, SicsBalance, wait_for
from tests.edge_agent.devices.test_other_scales import Nci, Toledo

LOOPBACK = ["127.0.0.1"]


def printer_info(
    name: str, address: str, properties: dict[bytes, bytes], service: str = RAW_SERVICE
) -> ServiceInfo:
    return ServiceInfo(
        service,
        f"{name}.{service}",
        addresses=[socket.inet_aton(address)],
        port=9100,
        properties=properties,
        server=f"{name.replace(' ', '-').lower()}.local.",
    )


# -- the pure part -------------------------------------------------------------------------------


def test_candidate_id_is_the_serial_number() -> None:
    info = printer_info(
        "Zebra ZD421", "10.0.0.5", {b"serial": b"XXZJ221400123", b"ty": b"Zebra ZD421-203dpi"}
    )
    candidate = printer_candidate(info)
    assert candidate is not None
    assert candidate.id == "XXZJ221400123"
    assert candidate.stable_id
    assert (candidate.host, candidate.port) == ("10.0.0.5", 9100)
    assert candidate.language == "zpl"
    assert candidate.model == "Zebra ZD421-203dpi"
    config = candidate.to_config()
    assert (config.id, config.host, config.port, config.language) == (
        "XXZJ221400123",
        "10.0.0.5",
        9100,
        "zpl",
    )


def test_candidate_id_falls_back_to_the_mac_then_the_name() -> None:
    with_mac = printer_candidate(printer_info("P1", "10.0.0.6", {b"MAC": b"00:07:4D:AA:BB:CC"}))
    assert with_mac is not None
    assert with_mac.id == "00:07:4d:aa:bb:cc"
    nameless = printer_candidate(printer_info("Office printer", "10.0.0.7", {}))
    assert nameless is not None
    assert nameless.id == "mdns:Office printer"
    assert not nameless.stable_id


def test_hostile_txt_properties_do_not_break_the_candidate() -> None:
    info = printer_info("P2", "10.0.0.8", {b"serial": b"\xff\xfe\x00", b"\x00": b"x" * 200, b"ty": None})  # type: ignore[dict-item]
    candidate = printer_candidate(info)
    assert candidate is not None
    assert candidate.host == "10.0.0.8"


# -- real mDNS on loopback -----------------------------------------------------------------------


@pytest.fixture
def responder():
    zc = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    yield zc
    zc.close()


def test_browser_finds_a_printer_and_keeps_its_id_when_the_address_changes(responder: Zeroconf) -> None:
    serial = f"XXZJ{uuid.uuid4().hex[:10].upper()}"
    name = f"Zebra ZD421 {serial}"
    info = printer_info(name, "127.0.0.1", {b"serial": serial.encode(), b"ty": b"Zebra ZD421"})
    responder.register_service(info)
    changes = []
    with PrinterBrowser(interfaces=LOOPBACK, on_change=changes.append) as browser:
        found = browser.wait_for(lambda cs: any(c.id == serial for c in cs), 10.0)
        printer = next(c for c in found if c.id == serial)
        assert printer.host == "127.0.0.1"
        moved = printer_info(name, "127.0.0.2", {b"serial": serial.encode(), b"ty": b"Zebra ZD421"})
        responder.update_service(moved)
        found = browser.wait_for(lambda cs: any(c.id == serial and c.host == "127.0.0.2" for c in cs), 10.0)
        mine = [c for c in found if c.id == serial]
        assert [c.host for c in mine] == ["127.0.0.2"]  # the same printer, at its new address
        assert [c.host for c in changes if c.id == serial] == ["127.0.0.1", "127.0.0.2"]
        responder.unregister_service(moved)
        browser.wait_for(lambda cs: all(c.id != serial for c in cs), 10.0)
        assert all(c.id != serial for c in browser.candidates())


def test_agent_advertises_itself(responder: Zeroconf) -> None:
    name = f"dockside-agent {uuid.uuid4().hex[:8]}"
    seen: list[ServiceInfo] = []

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, service_name: str) -> None:
            info = zc.get_service_info(type_, service_name, timeout=2000)
            if info is not None:
                seen.append(info)

        def update_service(self, zc: Zeroconf, type_: str, service_name: str) -> None:
            pass

        def remove_service(self, zc: Zeroconf, type_: str, service_name: str) -> None:
            pass

    advertiser = Zeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    with AgentAdvertisement(
        name, 8100, properties={"agent_id": "A1", "warehouse": "WH1"}, zeroconf=advertiser
    ):
        browser = ServiceBrowser(responder, AGENT_SERVICE, Listener())
        try:
            wait_for(
                lambda: any(i.name.startswith(name) for i in seen), 10.0, what="the agent's announcement"
            )
        finally:
            browser.cancel()
    advertiser.close()
    info = next(i for i in seen if i.name.startswith(name))
    assert info.port == 8100
    assert info.properties[b"warehouse"] == b"WH1"


# -- scales on ptys ------------------------------------------------------------------------------


def test_each_protocol_is_recognised(tmp_path) -> None:
    peers = {}
    for protocol, respond, terminator, parity in [
        ("mt-sics", SicsBalance(), b"\r\n", False),
        ("toledo-8217", Toledo(), b"", True),
        ("nci-scp12", Nci(), b"\r", True),
    ]:
        folder = tmp_path / protocol
        folder.mkdir()
        peers[protocol] = PtyScalePeer(folder, respond, terminator=terminator, seven_bit_parity=parity)
    cas_folder = tmp_path / "cas"
    cas_folder.mkdir()
    cas = PtyScalePeer(cas_folder, lambda command: None)
    cas.stream = lambda: b"ST,GS,  1.000kg\r\n"
    peers["cas"] = cas
    silent_folder = tmp_path / "silent"
    silent_folder.mkdir()
    silent = PtyScalePeer(silent_folder, lambda command: None)
    try:
        for protocol, peer in peers.items():
            candidate = probe_scale(peer.path, timeout_s=0.2)
            assert candidate is not None, protocol
            assert candidate.protocol == protocol
            assert candidate.to_config() == ScaleConfig(protocol=protocol, port=peer.path)
        toledo = peers["toledo-8217"].path
        found = discover_scales([toledo, silent.path, str(tmp_path / "ttyUSB7")], timeout_s=0.2)
        assert [c.description for c in found if c.port == toledo] == [f"Toledo 8217 on {toledo}"]
        assert all(c.port != silent.path for c in found)
    finally:
        for peer in [*peers.values(), silent]:
            peer.close()


def test_missing_port_is_no_scale(tmp_path) -> None:
    assert probe_scale(str(tmp_path / "ttyUSB5"), timeout_s=0.1) is None


def test_serial_ports_include_given_paths_once() -> None:
    ports = serial_ports(["/tmp/pty-a", "/tmp/pty-a"])
    assert ports.count("/tmp/pty-a") == 1
