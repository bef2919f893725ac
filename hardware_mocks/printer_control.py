"""The mock printer's HTTP control API (contract in DESIGN.md): labels, faults, status.

- `GET /labels[?since=N]`: every recorded label, oldest first, each
  `{"index", "received_at", "received_ts", "printed_at", "data", "fields", "connection", "bytes"}`
  (`index` starts at 1 and keeps counting after `DELETE /labels`; `since` returns only later ones).
- `DELETE /labels`: forget the recorded labels.
- `POST /fault` with `{"fault": name}` (and `"delay_s"` for `slow`): put a fault in force.
- `POST /confirm` with `{"mode": "at_once" | "delay" | "fault_after_accept"}` (and `"delay_s"`
  for `delay`): how the printer confirms labels (see `hardware_mocks.printer_faults`).
- `GET /status` (also `GET /`): the fault, confirm mode, counts, buffer and connection figures.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Query, Request

from hardware_mocks.control_http import ControlError, control_app, read_json_object
from hardware_mocks.printer_faults import CONFIRM_MODES, FAULTS

__all__ = ["ControlledPrinter", "build_printer_app"]


class ControlledPrinter(Protocol):
    """What the control API drives of a printer (`MockPrinter`), called on the printer's loop."""

    @property
    def serial(self) -> str: ...

    @property
    def port(self) -> int: ...

    def labels(self, since: int = 0) -> list[dict[str, Any]]: ...

    def clear_labels(self) -> int: ...

    async def apply_fault(self, fault: str, delay_s: float | None = None) -> dict[str, Any]: ...

    async def apply_confirm(self, mode: str, delay_s: float | None = None) -> dict[str, Any]: ...

    def status_snapshot(self) -> dict[str, Any]: ...


def build_printer_app(printer: ControlledPrinter) -> FastAPI:
    """The control app for one printer; its handlers run on the printer's own event loop."""
    app = control_app(
        f"Dockside mock printer {printer.serial}",
        "Control API of a software label printer: what it printed, and faults to inject.",
    )

    @app.get("/labels", summary="Labels printed so far, oldest first")
    async def get_labels(
        since: int = Query(0, ge=0, description="only labels with an index above this"),
    ) -> list[dict[str, Any]]:
        return printer.labels(since)

    @app.delete("/labels", summary="Forget the recorded labels (indexes keep counting)")
    async def delete_labels() -> dict[str, Any]:
        return {"cleared": printer.clear_labels()}

    @app.post("/fault", summary='Inject a fault, or clear it with {"fault": "none"}')
    async def post_fault(request: Request) -> dict[str, Any]:
        body = await read_json_object(request)
        fault = body.get("fault")
        if not isinstance(fault, str) or fault not in FAULTS:
            raise ControlError(
                400,
                "unknown_fault",
                f"fault {fault!r} is not one this printer knows: send one of {', '.join(FAULTS)}",
            )
        delay = _delay_of(body, example="0.3")
        try:
            return await printer.apply_fault(fault, delay)
        except ValueError as exc:
            raise ControlError(400, "invalid_delay", str(exc)) from None
        except OSError as exc:
            raise ControlError(
                409,
                "port_unavailable",
                f"could not listen on port {printer.port} again ({exc}): free it and retry",
            ) from None

    @app.post("/confirm", summary="How labels are confirmed: at_once, delay or fault_after_accept")
    async def post_confirm(request: Request) -> dict[str, Any]:
        body = await read_json_object(request)
        mode = body.get("mode")
        if not isinstance(mode, str) or mode not in CONFIRM_MODES:
            raise ControlError(
                400,
                "unknown_confirm_mode",
                f"confirm mode {str(mode)[:40]!r} is not one this printer knows: send one of "
                f"{', '.join(CONFIRM_MODES)}",
            )
        delay = _delay_of(body, example="2")
        try:
            return await printer.apply_confirm(mode, delay)
        except ValueError as exc:
            raise ControlError(400, "invalid_delay", str(exc)) from None

    @app.get("/status", summary="Fault, counts, buffer and connections")
    async def get_status() -> dict[str, Any]:
        return printer.status_snapshot()

    @app.get("/", summary="Same as /status")
    async def get_root() -> dict[str, Any]:
        return printer.status_snapshot()

    return app


def _delay_of(body: dict[str, Any], *, example: str) -> float | None:
    """The body's optional `delay_s` in seconds (its range is the printer's to check), or 400."""
    delay = body.get("delay_s")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)):
        raise ControlError(400, "invalid_delay", f"delay_s must be a number of seconds, like {example}")
    return None if delay is None else float(delay)
