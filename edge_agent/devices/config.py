"""What a station's JSON says about its printers and its scale, checked before any device is opened.

The station entity synced from the cloud carries `printers: [...]` and `scale: {...}`; these
classes are those entries, validated, so a typo in the admin console becomes one clear
`InputError` at sync time instead of a silent failure at the first pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockside.errors import InputError

__all__ = [
    "PRINTER_CONNECTIONS",
    "PRINTER_LANGUAGES",
    "SCALE_PROTOCOLS",
    "PrinterConfig",
    "ScaleConfig",
]

PRINTER_LANGUAGES = ("zpl", "escpos")
PRINTER_CONNECTIONS = ("tcp", "serial", "usb", "file")
SCALE_PROTOCOLS = ("mt-sics", "toledo-8217", "nci-scp12", "cas")
# The rates a scale's menu offers; anything else is a typo, not an exotic scale.
SCALE_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)

_MAX_TEXT = 200


def _text(d: Mapping[str, Any], key: str, what: str, *, required: bool, default: str = "") -> str:
    value = d.get(key)
    if value is None:
        if required:
            raise InputError(
                f"{what} has no {key!r}: add it to the station's configuration", code="invalid_device_config"
            )
        return default
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{what} has {key}={value!r}, which is not a non-empty text: "
            "fix it in the station's configuration",
            code="invalid_device_config",
        )
    if len(value) > _MAX_TEXT:
        raise InputError(
            f"{what} has a {key} of {len(value)} characters (at most {_MAX_TEXT}): shorten it",
            code="invalid_device_config",
        )
    return value.strip()


def _mapping(d: object, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise InputError(
            f"{what} is {type(d).__name__}, not an object: send it as a JSON object",
            code="invalid_device_config",
        )
    return d


@dataclass(frozen=True)
class PrinterConfig:
    """One printer of a station: how to reach it and what language it speaks."""

    id: str
    language: str
    host: str | None = None
    port: int = 9100
    model: str = ""
    role: str = "label"
    connection: str = "tcp"
    device: str | None = None

    @property
    def address(self) -> str:
        """Where the printer is, as a person would look for it: host:port or a device path."""
        if self.connection == "tcp":
            return f"{self.host}:{self.port}"
        return f"{self.connection} {self.device}"

    @classmethod
    def from_dict(cls, d: object) -> PrinterConfig:
        """The station JSON printer entry, checked; raises InputError naming the bad field."""
        entry = _mapping(d, "a printer entry")
        printer_id = _text(entry, "id", "a printer entry", required=True)
        what = f"printer {printer_id}"
        language = _text(entry, "language", what, required=False, default="zpl").lower()
        if language not in PRINTER_LANGUAGES:
            raise InputError(
                f"{what} has language {language!r}; Dockside drives {', '.join(PRINTER_LANGUAGES)}: "
                "pick the language the printer is set to",
                code="invalid_device_config",
            )
        connection = _text(entry, "connection", what, required=False, default="tcp").lower()
        if connection not in PRINTER_CONNECTIONS:
            raise InputError(
                f"{what} has connection {connection!r}; use one of {', '.join(PRINTER_CONNECTIONS)}",
                code="invalid_device_config",
            )
        if language == "zpl" and connection == "usb":
            raise InputError(
                f"{what} is a ZPL printer on USB, which Dockside does not drive: "
                "connect it by network (tcp) or serial",
                code="invalid_device_config",
            )
        host = _text(entry, "host", what, required=connection == "tcp") if connection == "tcp" else None
        device = None if connection == "tcp" else _text(entry, "device", what, required=True)
        port = entry.get("port", 9100)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InputError(
                f"{what} has port {port!r}; a TCP port is a whole number from 1 to 65535 "
                "(raw printing is 9100)",
                code="invalid_device_config",
            )
        return cls(
            id=printer_id,
            language=language,
            host=host,
            port=port,
            model=_text(entry, "model", what, required=False),
            role=_text(entry, "role", what, required=False, default="label"),
            connection=connection,
            device=device,
        )


@dataclass(frozen=True)
class ScaleConfig:
    """The scale of a station: which protocol it speaks on which serial port."""

    protocol: str
    port: str
    baudrate: int | None = None  # None: the protocol's factory default

    @classmethod
    def from_dict(cls, d: object) -> ScaleConfig:
        """The station JSON scale entry, checked; raises InputError naming the bad field."""
        entry = _mapping(d, "the scale entry")
        protocol = _text(entry, "protocol", "the scale", required=True).lower()
        if protocol not in SCALE_PROTOCOLS:
            raise InputError(
                f"the scale has protocol {protocol!r}; Dockside reads {', '.join(SCALE_PROTOCOLS)}: "
                "pick the one set in the scale's communication menu",
                code="invalid_device_config",
            )
        port = _text(entry, "port", "the scale", required=True)
        baudrate = entry.get("baudrate")
        if baudrate is not None and (
            isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate not in SCALE_BAUDRATES
        ):
            raise InputError(
                f"the scale has baudrate {baudrate!r}; use one of {', '.join(map(str, SCALE_BAUDRATES))} "
                "as set on the scale, or leave it out for the protocol's default",
                code="invalid_device_config",
            )
        return cls(protocol=protocol, port=port, baudrate=baudrate)
