"""The printer languages the mock speaks, each behind the same small interface.

A language knows how to split a connection's bytes into events, what text a finished job prints,
and how a real printer of that kind answers a host query given its current state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hardware_mocks import escpos, zpl
from hardware_mocks.printer_events import PrinterEvent, PrinterQuery

__all__ = ["LANGUAGES", "EscposLanguage", "PrinterLanguage", "PrinterState", "PrinterStream", "ZplLanguage"]


@dataclass(frozen=True, slots=True)
class PrinterState:
    """What a status reply can report: the printer's identity, its fault and its buffer."""

    serial: str
    model: str
    firmware: str
    fault: str
    formats_waiting: int
    partial_format: bool
    buffer_full: bool
    settings: dict[str, str] = field(default_factory=dict)


class PrinterStream(Protocol):
    """One connection's incremental parser."""

    @property
    def in_format(self) -> bool: ...

    @property
    def pending_bytes(self) -> int: ...

    def feed(self, data: bytes) -> None: ...

    def next_event(self, jobs_allowed: bool = True) -> PrinterEvent | None: ...


class PrinterLanguage(Protocol):
    """What the printer needs from a language."""

    name: str
    file_suffix: str

    def new_stream(self) -> PrinterStream: ...

    def fields(self, raw: bytes) -> list[str]: ...

    def answer(self, query: PrinterQuery, state: PrinterState) -> bytes | None: ...


class ZplLanguage:
    """Zebra ZPL II with Set-Get-Do, as a ZD/ZT-series network printer speaks it on port 9100."""

    name = "zpl"
    file_suffix = ".zpl"

    def new_stream(self) -> PrinterStream:
        return zpl.ZplStream()

    def fields(self, raw: bytes) -> list[str]:
        return zpl.decode_fields(raw)

    def answer(self, query: PrinterQuery, state: PrinterState) -> bytes | None:
        status = _zpl_status(state)
        if query.kind == "host_status":
            return zpl.host_status(status)
        if query.kind == "host_identification":
            return zpl.host_identification(state.model, state.firmware)
        if query.kind == "sgd_getvar":
            value = self._sgd_value(query.argument, state, status)
            return b'"' + value.encode("utf-8", "replace") + b'"'
        # ~HM and ~HD answer too on real printers, but nothing here depends on their contents.
        return None

    @staticmethod
    def _sgd_value(name: str, state: PrinterState, status: zpl.ZplStatus) -> str:
        known = {
            "device.unique_id": state.serial,
            "device.product_name": state.model,
            "device.friendly_name": state.settings.get("device.friendly_name", state.serial),
            "appl.name": state.firmware,
            "device.host_status": zpl.sgd_host_status(status),
            "media.status": "out" if state.fault == "paper_out" else "ok",
            "head.latch": "open" if state.fault == "head_open" else "ok",
            "ribbon.status": "out" if state.fault == "ribbon_out" else "ok",
            "device.languages": "zpl",
        }
        if name in known:
            return known[name]
        return state.settings.get(name, "?")


def _zpl_status(state: PrinterState) -> zpl.ZplStatus:
    return zpl.ZplStatus(
        paper_out=state.fault == "paper_out",
        paused=state.fault == "paused",
        head_up=state.fault == "head_open",
        ribbon_out=state.fault == "ribbon_out",
        buffer_full=state.buffer_full,
        partial_format=state.partial_format,
        formats_waiting=state.formats_waiting,
    )


class EscposLanguage:
    """Epson ESC/POS as a thermal receipt printer on raw TCP port 9100 speaks it."""

    name = "escpos"
    file_suffix = ".bin"

    def new_stream(self) -> PrinterStream:
        return escpos.EscposStream()

    def fields(self, raw: bytes) -> list[str]:
        return escpos.printed_lines(raw)

    def answer(self, query: PrinterQuery, state: PrinterState) -> bytes | None:
        if query.kind != "realtime_status":
            return None
        condition = escpos.EscposCondition(
            cover_open=state.fault == "head_open",
            paper_end=state.fault == "paper_out",
            paused=state.fault == "paused",
            error=state.fault == "ribbon_out",
        )
        return escpos.realtime_status(int(query.argument), condition)


LANGUAGES: dict[str, PrinterLanguage] = {"zpl": ZplLanguage(), "escpos": EscposLanguage()}
