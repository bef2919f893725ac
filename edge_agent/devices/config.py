"""What a station's JSON says about its printers and its scale, checked before any device is opened.

The station entity synced from the cloud carries `printers: [...]` and `scale: {...}`; these
classes are those entries, checked by the rules the cloud checked them with when they were
saved (`dockside.stations`), so what the cloud accepts the agent runs, and anything else becomes
one clear `InputError` at sync time instead of a silent failure at the first pack.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockside.stations import (
    PRINTER_CONNECTIONS,
    PRINTER_LANGUAGES,
    SCALE_BAUDRATES,
    SCALE_PROTOCOLS,
    parse_printer,
    parse_scale,
)

__all__ = [
    "PRINTER_CONNECTIONS",
    "PRINTER_LANGUAGES",
    "SCALE_BAUDRATES",
    "SCALE_PROTOCOLS",
    "PrinterConfig",
    "ScaleConfig",
]


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
        entry = parse_printer(d)
        return cls(
            id=entry.id,
            language=entry.language,
            host=entry.host,
            port=entry.port,
            model=entry.model,
            role=entry.role,
            connection=entry.connection,
            device=entry.device,
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
        entry = parse_scale(d)
        return cls(protocol=entry.protocol, port=entry.port, baudrate=entry.baudrate)
