"""A station's printers and scale: one definition, so what the cloud accepts the agent runs.

The cloud validates a station with these models when an admin saves it (`cloud.fleet.warehouses`),
and stores and syncs their dump; the agent checks every synced entry with `parse_printer` and
`parse_scale` before it opens a device (`edge_agent.devices.config`). Both sides run the same
rules, so a printer the cloud took is never refused at the station, leaving it without one.

One deliberate difference: the cloud refuses a field it does not know (a typo such as `hots`),
while the agent ignores one, so a newer cloud's new field never takes a printer away from an
agent that has not been updated yet.

`model` is optional (empty when unknown): it only labels the printer in the fleet view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from dockside.errors import InputError

__all__ = [
    "MAX_PRINTERS_PER_STATION",
    "PRINTER_CONNECTIONS",
    "PRINTER_LANGUAGES",
    "SCALE_BAUDRATES",
    "SCALE_PROTOCOLS",
    "StationPrinter",
    "StationPrinters",
    "StationScale",
    "parse_printer",
    "parse_scale",
]

PRINTER_LANGUAGES = ("zpl", "escpos")
PRINTER_CONNECTIONS = ("tcp", "serial", "usb", "file")
SCALE_PROTOCOLS = ("mt-sics", "toledo-8217", "nci-scp12", "cas")
# The rates a scale's menu offers; anything else is a typo, not an exotic scale.
SCALE_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_PRINTERS_PER_STATION = 16


def _lowercase(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
PrinterId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    ),
]
Role = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
]
Host = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]][A-Za-z0-9.:\[\]-]*$"
    ),
]
DevicePath = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256, pattern=_NO_CONTROL)
]
Model = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
]
Language = Annotated[Literal["zpl", "escpos"], BeforeValidator(_lowercase)]
Connection = Annotated[Literal["tcp", "serial", "usb", "file"], BeforeValidator(_lowercase)]
ScaleProtocol = Annotated[Literal["mt-sics", "toledo-8217", "nci-scp12", "cas"], BeforeValidator(_lowercase)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationPrinter(_Entry):
    """A label printer at a station and how the agent reaches it."""

    id: PrinterId
    role: Role = "label"
    language: Language = "zpl"
    connection: Connection = "tcp"
    host: Host | None = Field(default=None, description="the printer's address; for connection tcp")
    port: Annotated[int, Field(ge=1, le=65535, strict=True)] = 9100
    device: DevicePath | None = Field(
        default=None, description="serial port, USB id or file path; for connection serial, usb or file"
    )
    model: Model = ""

    @model_validator(mode="after")
    def _reachable(self) -> StationPrinter:
        if self.connection == "tcp":
            if self.host is None:
                raise ValueError("a network (tcp) printer needs `host`: its IP address or name")
            if self.device is not None:
                raise ValueError("a network (tcp) printer is reached by `host`, not `device`: drop `device`")
        else:
            if self.device is None:
                raise ValueError(f"a {self.connection} printer needs `device` (the port or path it is on)")
            if self.host is not None:
                raise ValueError(
                    f"a {self.connection} printer is reached by `device`, not `host`: drop `host`"
                )
        if self.language == "zpl" and self.connection == "usb":
            raise ValueError(
                "Dockside does not drive ZPL printers on USB: connect it by network (tcp) or serial"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A network printer's entry reads (and syncs) as it did before serial, USB and file
        # printers could be configured: no `connection: tcp`, no `device: null`.
        data: dict[str, Any] = handler(self)
        if data.get("connection") == "tcp":
            del data["connection"]
        for key in ("host", "device"):
            if key in data and data[key] is None:
                del data[key]
        return data


def _unique_ids(printers: list[StationPrinter]) -> list[StationPrinter]:
    ids = [printer.id for printer in printers]
    duplicates = sorted({printer_id for printer_id in ids if ids.count(printer_id) > 1})
    if duplicates:
        raise ValueError(f"printer ids must be unique within a station; repeated: {', '.join(duplicates)}")
    return printers


StationPrinters = Annotated[
    list[StationPrinter], Field(max_length=MAX_PRINTERS_PER_STATION), AfterValidator(_unique_ids)
]


class StationScale(_Entry):
    """The scale at a station: its protocol and serial line."""

    protocol: ScaleProtocol
    port: DevicePath
    baudrate: Annotated[
        Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] | None,
        Field(description="as set on the scale; leave it out for the protocol's default"),
    ] = None

    @model_serializer(mode="wrap")
    def _without_default_rate(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("baudrate") is None:
            data.pop("baudrate", None)
        return data


def parse_printer(entry: object) -> StationPrinter:
    """A synced printer entry, checked; InputError (invalid_device_config) naming the field."""
    printer_id = entry.get("id") if isinstance(entry, Mapping) else None
    named = isinstance(printer_id, str) and printer_id.strip()
    what = f"printer {printer_id}" if named else "a printer entry"
    return _parse(StationPrinter, entry, what)


def parse_scale(entry: object) -> StationScale:
    """A synced scale entry, checked; InputError (invalid_device_config) naming the field."""
    return _parse(StationScale, entry, "the scale")


_E = TypeVar("_E", StationPrinter, StationScale)

# What to do about a bad field, by (entry kind, field).
_HINTS = {
    ("StationPrinter", "id"): "use the printer's serial number or MAC (1 to 64 letters, digits, . _ : -)",
    ("StationPrinter", "role"): "a role is lower-case letters, digits, _ and - (label, fallback, slip)",
    (
        "StationPrinter",
        "language",
    ): f"pick the language the printer is set to ({', '.join(PRINTER_LANGUAGES)})",
    ("StationPrinter", "connection"): f"use one of {', '.join(PRINTER_CONNECTIONS)}",
    ("StationPrinter", "host"): "give the printer's IP address or host name",
    ("StationPrinter", "port"): "a TCP port is a whole number from 1 to 65535 (raw printing is 9100)",
    ("StationPrinter", "device"): "give the serial port, USB id or file path the printer is on",
    ("StationPrinter", "model"): "the model is a label of up to 64 characters, or leave it out",
    ("StationScale", "protocol"): (
        f"pick the one set in the scale's communication menu ({', '.join(SCALE_PROTOCOLS)})"
    ),
    ("StationScale", "port"): "give the serial device the scale is on (/dev/ttyUSB0, COM3)",
    ("StationScale", "baudrate"): (
        f"use one of {', '.join(map(str, SCALE_BAUDRATES))} as set on the scale, or leave it out "
        "for the protocol's default"
    ),
}


def _parse(kind: type[_E], entry: object, what: str) -> _E:
    if not isinstance(entry, Mapping):
        raise InputError(
            f"{what} is {type(entry).__name__}, not an object: send it as a JSON object",
            code="invalid_device_config",
        )
    known = {key: value for key, value in entry.items() if key in kind.model_fields}
    try:
        return kind.model_validate(known)
    except ValidationError as exc:
        problems = "; ".join(_describe(kind.__name__, error) for error in exc.errors(include_url=False))
        raise InputError(f"{what}: {problems}", code="invalid_device_config") from None


def _describe(kind: str, error: Mapping[str, Any]) -> str:
    loc = error.get("loc", ())
    field = str(loc[0]) if loc else ""
    if error.get("type") == "missing":
        return f"no {field!r}: add it to the station's configuration"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if not field:
        return message
    got = error.get("input")
    shown = f"{got!r}" if isinstance(got, str | int | float | bool) else type(got).__name__
    hint = _HINTS.get((kind, field), "fix it in the station's configuration")
    return f"{field} is {shown[:80]} ({message[:1].lower()}{message[1:]}): {hint}"
