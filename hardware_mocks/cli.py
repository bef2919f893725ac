"""`dockside-mock`: run a software printer or scale from the command line until Ctrl-C.

Both commands write a ready file (JSON, written to a temporary name and renamed, so a launcher that
polls for it never reads half of it) once everything listens, and print one line with the
addresses.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hardware_mocks.control_http import ControlledMock
from hardware_mocks.printer import MSS_RANGE, RECEIVE_BUFFER_RANGE, MockPrinter
from hardware_mocks.scale import MockScale
from hardware_mocks.scale_protocols import PROTOCOLS

__all__ = ["main", "write_ready_file"]

_F = TypeVar("_F", bound=Callable[..., Any])


def write_ready_file(path: Path, content: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, then a rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(_number: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.is_set():
        stop.wait(1.0)


def _serve_until_signal(
    mock: ControlledMock, ready_file: Path | None, ready: dict[str, Any], line: str
) -> None:
    """Announce a started mock (the ready file, then one line), serve until Ctrl-C, then stop it."""
    try:
        if ready_file is not None:
            write_ready_file(ready_file, ready)
        click.echo(line)
        sys.stdout.flush()
        _wait_for_signal()
    finally:
        mock.stop()


def _control_port_option(default: int) -> Callable[[_F], _F]:
    """`--control-port`, the mock's HTTP control API port."""
    return click.option(
        "--control-port",
        default=default,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="HTTP control API port on 127.0.0.1; 0 picks a free one.",
    )


def _ready_file_option(help_text: str) -> Callable[[_F], _F]:
    """`--ready-file`, where the mock writes what a launcher needs (as `help_text` says) once it is up."""
    return click.option(
        "--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help_text
    )


def _byte_count_option(name: str, bounds: tuple[int, int], help_text: str) -> Callable[[_F], _F]:
    """An optional size in bytes within `bounds` (click says the range when a value is outside)."""
    return click.option(name, type=click.IntRange(*bounds), default=None, metavar="BYTES", help=help_text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Faithful software label printers and serial scales for tests, demos and dry runs.

    Each device speaks the real protocol (ZPL or ESC/POS over raw TCP; MT-SICS, Toledo 8217,
    NCI/SCP-12 or CAS over a serial pty) and has an HTTP control API to read what it received and
    to inject faults. Stop it with Ctrl-C.
    """


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the raw TCP print port binds to."
)
@click.option(
    "--port",
    default=9100,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Raw TCP print port; 0 picks a free one.",
)
@_control_port_option(9180)
@click.option(
    "--language",
    type=click.Choice(["zpl", "escpos"]),
    default="zpl",
    show_default=True,
    help="Printer language: Zebra ZPL II (labels) or Epson ESC/POS (receipts, packing slips).",
)
@click.option("--serial", default=None, help="Serial number the printer reports [default: MOCK<port>].")
@click.option(
    "--model", default=None, help="Model name the printer reports [default: ZD421; TM-T88VI for escpos]."
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder that receives one file per printed label (0001.zpl, 0002.zpl, ...).",
)
@_ready_file_option('Write {"port", "control", "serial", "language"} as JSON here once listening.')
@click.option(
    "--advertise/--no-advertise",
    default=False,
    show_default=True,
    help="Announce the printer over zeroconf (_pdl-datastream._tcp and _printer._tcp).",
)
@_byte_count_option(
    "--receive-buffer",
    RECEIVE_BUFFER_RANGE,
    "Receive buffer (SO_RCVBUF) of every print connection, like a small device's few KB "
    "[default: the operating system's].",
)
@_byte_count_option(
    "--mss",
    MSS_RANGE,
    "Largest TCP segment the printer takes; 1460 is a printer on Ethernet [default: the "
    "interface's, about 64 KB on loopback].",
)
@click.option(
    "--confirm",
    type=click.Choice(["at_once", "delay"]),
    default="at_once",
    show_default=True,
    help="How labels are confirmed: printed at once, or after --confirm-delay seconds in the buffer.",
)
@click.option(
    "--confirm-delay",
    type=click.FloatRange(0, 600, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds each label waits in the buffer before it prints (with --confirm delay).",
)
def printer(
    host: str,
    port: int,
    control_port: int,
    language: str,
    serial: str | None,
    model: str | None,
    store: Path | None,
    ready_file: Path | None,
    advertise: bool,
    receive_buffer: int | None,
    mss: int | None,
    confirm: str,
    confirm_delay: float,
) -> None:
    """Run a network label printer on raw TCP with the control API of DESIGN.md.

    Control API: GET /labels, DELETE /labels, POST /fault {"fault": "none" | "paper_out" |
    "head_open" | "paused" | "offline" | "slow" | "drop" | "ribbon_out" | "buffer_full" |
    "silent" | "stall"}, POST /confirm {"mode": "at_once" | "delay" | "fault_after_accept",
    "delay_s": 2}, GET /status. OpenAPI docs at /docs.

    "stall" stops reading in the middle of the next label and keeps the connection open, so the
    host's writes block once the TCP buffers are full; with --receive-buffer 4096 --mss 1460
    that happens after about a hundred kilobytes, as with a real printer on Ethernet.
    """
    mock = MockPrinter(
        host=host,
        port=port,
        control_port=control_port,
        language=language,
        serial=serial,
        model=model,
        store=store,
        advertise=advertise,
        receive_buffer_bytes=receive_buffer,
        mss_bytes=mss,
    )
    try:
        mock.start()
    except OSError as exc:
        raise click.ClickException(
            f"could not listen ({exc}): pick free ports, or 0 for any free port"
        ) from None
    if confirm != "at_once":
        mock.set_confirm(confirm, confirm_delay)
    _serve_until_signal(
        mock,
        ready_file,
        {
            "port": mock.port,
            "control": mock.control_address,
            "serial": mock.serial,
            "language": language,
            "host": host,
            "model": mock.model,
        },
        f"mock {language} printer {mock.serial} ({mock.model}) printing on {host}:{mock.port}, "
        f"control http://{mock.control_address}",
    )


@main.command()
@click.option(
    "--protocol",
    type=click.Choice(list(PROTOCOLS)),
    default="mt-sics",
    show_default=True,
    help="Serial protocol: Mettler Toledo MT-SICS, Toledo 8217, NCI/SCP-12 or CAS continuous output.",
)
@_control_port_option(9181)
@click.option(
    "--link",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A symlink kept pointing at the current pty (re-pointed when the scale is replugged).",
)
@_ready_file_option('Write {"pty", "link", "control", "protocol"} as JSON here once ready.')
@click.option("--serial", default="B912345678", show_default=True, help="Serial number the scale reports.")
@click.option(
    "--units",
    default=None,
    help="Weighing unit (g, kg or lb where the protocol has it) [default: the protocol's usual one].",
)
def scale(
    protocol: str,
    control_port: int,
    link: Path | None,
    ready_file: Path | None,
    serial: str,
    units: str | None,
) -> None:
    """Run a serial scale on a pseudo-terminal; a driver opens the printed path with pyserial.

    Control API: GET / (pty path, weight, modes), POST /weight {"grams": 1234, "stable": true},
    POST /mode {"swing" | "overload" | "underload" | "noise" | "silent" | "unplug": true/false,
    "units": "g" | "kg" | "lb"}. OpenAPI docs at /docs.
    """
    try:
        mock = MockScale(protocol=protocol, control_port=control_port, link=link, serial=serial, units=units)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--units") from None
    try:
        mock.start()
    except OSError as exc:
        raise click.ClickException(
            f"could not start the scale ({exc}): check --control-port and --link"
        ) from None
    where = f"{mock.pty_path}" + (f" (linked from {link})" if link is not None else "")
    _serve_until_signal(
        mock,
        ready_file,
        {
            "pty": mock.pty_path,
            "link": str(link) if link is not None else None,
            "control": mock.control_address,
            "protocol": protocol,
        },
        f"mock {protocol} scale on {where}, control http://{mock.control_address}",
    )
