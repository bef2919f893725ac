"""The mock scale's HTTP control API (contract in DESIGN.md): the load, and modes to inject.

- `GET /`: `{"pty", "link", "control", "protocol", "grams", "stable", "reading", "units", ...}`.
- `POST /weight` with `{"grams": 1234, "stable": true}`: what lies on the platform.
- `POST /mode` with any of `{"swing": bool, "overload": bool, "underload": bool, "noise": bool,
  "silent": bool, "unplug": bool, "units": "g" | "kg" | "lb" | ...}`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from fastapi import FastAPI, Request

from hardware_mocks.control_http import ControlError, control_app, read_json_object
from hardware_mocks.scale_protocols import ScaleProtocol
from hardware_mocks.weighing import Weighing

__all__ = ["ControlledScale", "build_scale_app"]


class ControlledScale(Protocol):
    """What the control API drives of a scale (`MockScale`), called on the scale's loop."""

    @property
    def protocol(self) -> ScaleProtocol: ...

    @property
    def weighing(self) -> Weighing: ...

    def state(self) -> dict[str, Any]: ...

    async def apply_modes(self, modes: dict[str, Any]) -> dict[str, Any]: ...


def build_scale_app(scale: ControlledScale) -> FastAPI:
    """The control app for one scale; its handlers run on the scale's own event loop."""
    app = control_app(
        f"Dockside mock scale ({scale.protocol.name})",
        "Control API of a software serial scale: the load on it, and faults to inject.",
    )

    @app.get("/", summary="The pty path, the load, the reading and the modes")
    async def get_state() -> dict[str, Any]:
        return scale.state()

    @app.post("/weight", summary='Place a load: {"grams": 1234, "stable": true}')
    async def post_weight(request: Request) -> dict[str, Any]:
        body = await read_json_object(request)
        unknown = sorted(set(body) - {"grams", "stable"})
        if unknown:
            raise ControlError(
                400, "unknown_field", f"unknown field(s) {unknown}: send only grams and stable"
            )
        grams = body.get("grams")
        if isinstance(grams, bool) or not isinstance(grams, int | float) or not math.isfinite(grams):
            raise ControlError(400, "invalid_weight", f"grams must be a finite number, not {grams!r}")
        limit = scale.weighing.capacity_g * 10
        if abs(grams) > limit:
            raise ControlError(
                400,
                "invalid_weight",
                f"grams {grams} is beyond ±{limit:g}: use overload mode to test an overload",
            )
        stable = body.get("stable", True)
        if not isinstance(stable, bool):
            raise ControlError(400, "invalid_stable", f"stable must be true or false, not {stable!r}")
        scale.weighing.put(float(grams), stable)
        return scale.state()

    @app.post(
        "/mode", summary="Inject or clear modes: swing, overload, underload, noise, silent, unplug, units"
    )
    async def post_mode(request: Request) -> dict[str, Any]:
        body = await read_json_object(request)
        if not body:
            raise ControlError(400, "empty_mode", 'send at least one mode, like {"swing": true}')
        try:
            return await scale.apply_modes(body)
        except ValueError as exc:
            raise ControlError(400, "invalid_mode", f"{exc}; nothing was changed") from None
        except OSError as exc:
            raise ControlError(
                500, "pty_failed", f"could not open or link a pty ({exc}): check --link"
            ) from None

    return app
