"""`dockside-agent discover`: the printers on the LAN and the scales on this PC's serial ports.

Printers answer zeroconf (raw 9100 printing, LPD, IPP) and are listed with their stable id
(serial number or MAC), so the id typed into a station survives a DHCP address change. Every
serial port (plus the paths given with `--serial`) is probed protocol by protocol, and the
first protocol a scale answers in names it: "Toledo 8217 on /dev/ttyUSB0". Probing sends a
few bytes to each port: stop the agent first if it is reading a scale on one of them.
"""

from __future__ import annotations

import json
from typing import Any

import click

from edge_agent.devices import PrinterConfig
from edge_agent.devices.discovery import discover_printers, discover_scales

__all__ = ["discover_command"]


@click.command("discover")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines of text.")
@click.option(
    "--timeout",
    type=click.FloatRange(0.2, 60.0),
    default=3.0,
    show_default=True,
    help="Seconds to listen for printers on the LAN.",
)
@click.option(
    "--serial",
    "serial_paths",
    multiple=True,
    metavar="PATH",
    help="Also probe this serial device for a scale (a pty, a /dev/serial/by-id link); repeatable.",
)
@click.option("--no-printers", is_flag=True, help="Do not listen for printers.")
@click.option("--no-scales", is_flag=True, help="Do not probe serial ports for scales.")
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    metavar="ADDRESS",
    help="Listen for printers on this interface address only (e.g. 127.0.0.1); repeatable. Default: all.",
)
def discover_command(
    as_json: bool,
    timeout: float,
    serial_paths: tuple[str, ...],
    no_printers: bool,
    no_scales: bool,
    interfaces: tuple[str, ...],
) -> None:
    """List the printers on the LAN and the scales on this PC's serial ports, ready for a station."""
    printers = (
        [] if no_printers else discover_printers(timeout, interfaces=list(interfaces) if interfaces else None)
    )
    scales = [] if no_scales else discover_scales(serial_paths)
    if as_json:
        report: dict[str, Any] = {
            "printers": [
                {
                    "id": printer.id,
                    "stable_id": printer.stable_id,
                    "name": printer.name,
                    "model": printer.model,
                    "language": printer.language,
                    "host": printer.host,
                    "port": printer.port,
                    "service": printer.service_type,
                    "station_entry": _printer_entry(printer.to_config()),
                }
                for printer in printers
            ],
            "scales": [
                {
                    "port": scale.port,
                    "protocol": scale.protocol,
                    "description": scale.description,
                    "station_entry": {"protocol": scale.protocol, "port": scale.port},
                }
                for scale in scales
            ],
        }
        click.echo(json.dumps(report, indent=2))
        return
    if not no_printers:
        click.echo(f"printers ({len(printers)}):" if printers else "printers: none answered on the LAN")
        for printer in printers:
            language = printer.language or "language unknown"
            note = "" if printer.stable_id else " (no serial number published: the id is its name)"
            where = f"{printer.host}:{printer.port}"
            click.echo(f"  {printer.model or printer.name} at {where}, id {printer.id}, {language}{note}")
    if not no_scales:
        click.echo(f"scales ({len(scales)}):" if scales else "scales: none answered on the serial ports")
        for scale in scales:
            click.echo(f"  {scale.description}")


def _printer_entry(config: PrinterConfig) -> dict[str, Any]:
    return {
        "id": config.id,
        "role": config.role,
        "language": config.language,
        "host": config.host,
        "port": config.port,
        "model": config.model,
    }
