"""The driver for Zebra (ZPL) label printers: one kept-open connection, `~HS` status, SGD identity.

`send_nowait` hands a label to a socket that is already open without ever waiting, so a label
costs the pack path a few microseconds of driver time; `send` (connect if needed, wait for
buffer space) is for the printer's lane thread. `status` asks `~HS` and reads the three-line host status;
a printer that stays silent (some do when faulted) is reported as `no_answer`, one that cannot
be reached as `offline`. The `~HS` parser is a pure function so it can be fuzzed. Its "formats in
receive buffer" is what confirms labels as printed (`edge_agent.devices.print_confirmation`): `~HS`
jumps the printer's queue, so it counts the labels written before it that are still waiting.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from dockside.errors import PrinterError

from .config import PrinterConfig
from .printer import PrinterStatus, status_of
from .printer_links import PrinterLink, open_link

__all__ = ["ZplPrinter", "parse_host_identification", "parse_host_status", "parse_sgd_value"]

STX, ETX = 0x02, 0x03
HOST_STATUS = b"~HS"
HOST_IDENTIFICATION = b"~HI"
_FRAME = re.compile(rb"\x02([^\x02\x03]*)\x03")
_SGD_VALUE = re.compile(rb'"([^"]*)"')
# Fields of the ~HS strings (Zebra ZPL manual, ~HS): string 1 and string 2 by position.
_S1_PAPER_OUT, _S1_PAUSE, _S1_FORMATS, _S1_BUFFER_FULL = 1, 2, 4, 5
_S1_FIELDS = 12
_S2_HEAD_UP, _S2_RIBBON_OUT, _S2_LABEL_WAITING, _S2_LABELS_REMAINING = 2, 3, 7, 8
_S2_FIELDS = 11


def _frames(data: bytes) -> list[bytes]:
    return _FRAME.findall(data)


def parse_host_status(data: bytes, printer_name: str = "") -> PrinterStatus:
    """The status in a `~HS` reply (three STX..ETX strings); raises PrinterError on anything else."""
    name = printer_name or "(ZPL)"
    frames = _frames(data)
    if len(frames) < 3:
        raise PrinterError(
            f"printer {name} sent {len(data)} bytes that are not a Zebra host status "
            f"({len(frames)} of 3 strings): check that the printer is set to ZPL",
            code="printer_garbled_status",
        )
    # The last three strings are the newest answer; anything before is a stale reply.
    try:
        lines = [frame.decode("ascii").strip() for frame in frames[-3:]]
    except UnicodeDecodeError as exc:
        raise PrinterError(
            f"printer {name} sent a host status with non-ASCII bytes: check that the printer is set to ZPL",
            code="printer_garbled_status",
        ) from exc
    first, second = lines[0].split(","), lines[1].split(",")
    if len(first) < _S1_FIELDS or len(second) < _S2_FIELDS:
        raise PrinterError(
            f"printer {name} sent a host status with {len(first)} and {len(second)} fields "
            f"instead of {_S1_FIELDS} and {_S2_FIELDS}: check that the printer is set to ZPL",
            code="printer_garbled_status",
        )

    def number(fields: list[str], index: int, what: str) -> int:
        text = fields[index].strip()
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise PrinterError(
                f"printer {name} sent {text!r} as its {what} in the host status: check that the "
                "printer is set to ZPL",
                code="printer_garbled_status",
            )
        return int(text)

    flags = {
        "paper_out": number(first, _S1_PAPER_OUT, "paper-out flag"),
        "paused": number(first, _S1_PAUSE, "pause flag"),
        "buffer_full": number(first, _S1_BUFFER_FULL, "buffer-full flag"),
        "head_open": number(second, _S2_HEAD_UP, "head-up flag"),
        "ribbon_out": number(second, _S2_RIBBON_OUT, "ribbon-out flag"),
    }
    formats = number(first, _S1_FORMATS, "formats in buffer")
    label_waiting = number(second, _S2_LABEL_WAITING, "label-waiting flag")
    remaining = number(second, _S2_LABELS_REMAINING, "labels remaining")
    details = []
    if formats:
        details.append(f"{formats} label{'s' if formats != 1 else ''} waiting to print")
    if remaining:
        details.append(f"{remaining} left in the batch")
    if label_waiting:
        details.append("a printed label waits to be taken")
    return status_of(
        name, (code for code, flag in flags.items() if flag), detail=", ".join(details), formats=formats
    )


def parse_sgd_value(data: bytes) -> str | None:
    """The value of an SGD `getvar` reply (a quoted string); None when absent or unknown ("?")."""
    match = _SGD_VALUE.search(data)
    if match is None:
        return None
    value = match.group(1).decode("ascii", "replace").strip()
    return value if value and value != "?" else None


def parse_host_identification(data: bytes) -> str | None:
    """The model and firmware of a `~HI` reply (STX model,firmware,dpmm,memory ETX); None if absent."""
    frames = _frames(data)
    if not frames:
        return None
    fields = frames[-1].decode("ascii", "replace").split(",")
    if len(fields) < 2 or not fields[0].strip():
        return None
    return f"{fields[0].strip()}/{fields[1].strip()}"


def _has_frames(count: int) -> Callable[[bytes], bool]:
    def done(buffer: bytes) -> bool:
        return len(_frames(buffer)) >= count

    return done


def _quoted(buffer: bytes) -> bool:
    return buffer.count(b'"') >= 2


class ZplPrinter:
    """A Zebra printer on one persistent connection (TCP 9100, serial, or a spool file)."""

    def __init__(
        self,
        config: PrinterConfig,
        *,
        connect_timeout_s: float = 2.0,
        write_timeout_s: float = 5.0,
        status_timeout_s: float = 1.0,
        link: PrinterLink | None = None,
    ) -> None:
        self.config = config
        self._status_timeout_s = status_timeout_s
        self._link = link or open_link(
            config, connect_timeout_s=connect_timeout_s, write_timeout_s=write_timeout_s
        )
        # Status and identity exchanges (a request, then its reply) one at a time. Labels do not
        # take this lock: the link orders writes itself, and a label written while a reply is
        # awaited follows the request on the wire, which the printer answers regardless.
        self._exchange = threading.Lock()

    @property
    def can_confirm(self) -> bool:
        """Whether `~HS` can tell which labels printed: not on a link that only writes (a spool file)."""
        return bool(self._link.can_read)

    @property
    def connection_drops(self) -> int:
        """How many times the printer closed the connection on us (see PrinterLane.check)."""
        return int(getattr(self._link, "peer_closes", 0))

    def open(self) -> None:
        self._link.open()

    def send(self, data: bytes) -> None:
        self._link.write(data)

    def send_nowait(self, data: bytes) -> int | None:
        """Start a label without waiting: bytes taken, or None (then `send` it in the lane thread).

        After a partial start, `finish_send` (which may wait) writes the rest.
        """
        return self._link.write_nowait(data)

    def finish_send(self) -> None:
        """Write the rest of a label `send_nowait` started; PrinterError if the printer stops taking it."""
        self._link.finish()

    def status(self) -> PrinterStatus:
        name = self.config.id
        with self._exchange:
            if not self._link.can_read:
                return status_of(name, (), detail=f"writes to {self.config.device}; it reports no status")
            try:
                self._link.drain()
                self._link.write(HOST_STATUS)
            except PrinterError as exc:
                return PrinterStatus(ready=False, faults=frozenset({"offline"}), message=exc.message)
            reply = self._link.read_until(_has_frames(3), self._status_timeout_s)
        if len(_frames(reply)) < 3:
            return status_of(
                name,
                {"no_answer"},
                detail=f"no host status from {self.config.address} within {self._status_timeout_s:g} s",
            )
        try:
            return parse_host_status(reply, name)
        except PrinterError as exc:
            return PrinterStatus(ready=False, faults=frozenset({"no_answer"}), message=exc.message)

    def _ask(self, request: bytes, done: Callable[[bytes], bool], timeout_s: float) -> bytes:
        with self._exchange:
            self._link.drain()
            self._link.write(request)
            return self._link.read_until(done, timeout_s)

    def identify(self) -> str:
        if not self._link.can_read:
            return f"file:{self.config.device}"
        for variable in ("device.unique_id", "internal_wired.mac_addr", "wlan.mac_addr"):
            reply = self._ask(f'! U1 getvar "{variable}"\r\n'.encode(), _quoted, self._status_timeout_s)
            value = parse_sgd_value(reply)
            if value and set(value) - {"0", ":", "-", "."}:  # an all-zero MAC means "no such card"
                return value.lower() if "mac_addr" in variable else value
        hi_reply = self._ask(HOST_IDENTIFICATION, _has_frames(1), self._status_timeout_s)
        model = parse_host_identification(hi_reply)
        if model:
            # Older firmware without SGD: model and firmware are the best id it offers.
            return f"{model}@{self.config.address}"
        raise PrinterError(
            f"printer {self.config.id} at {self.config.address} did not say its serial number or MAC: "
            "check that it is a Zebra printer set to ZPL",
            code="printer_unidentified",
        )

    def close(self) -> None:
        self._link.close()
