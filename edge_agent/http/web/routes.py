"""Routes of the station page: its static files and the per-station server-sent events.

The page shell and its files are open; opened on this PC (loopback) the shell comes with a
station session cookie (`edge_agent.http.local_access`), which every API call of the page then uses.

`GET /api/v1/stations/{code}/events` streams one JSON snapshot of the station whenever it
changes (weight, stability, scale and printer states, whether it can print a label now and its
held labels (`edge_agent.http.station_state`), cloud link, outbox depth), at most every
`tick_s`, with a comment line as heartbeat. A stream lasts `stream_lifetime_s` and then ends,
and the browser's EventSource reconnects by itself: no stream outlives its client for long, so
the agent's graceful shutdown never waits on a forgotten tab.

While someone watches a station whose printer is not ready, the stream asks that printer how it
is every `printer_recheck_s` (in the printer's own lane thread), so a held label clears on the
page as soon as the packer has fixed the printer, without waiting for the agent's slower
background checks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from dockside.errors import NotFound
from edge_agent.agent import Agent
from edge_agent.http.local_access import loopback_session
from edge_agent.http.local_credentials import LocalCredentials
from edge_agent.http.station_state import HeldLabels, label_printer, printer_said

__all__ = ["station_page_router", "station_snapshot"]

_STATIC = {
    "station.css": "text/css; charset=utf-8",
    "station.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "messages.js": "text/javascript; charset=utf-8",
    "messages_en.js": "text/javascript; charset=utf-8",
    "messages_zh.js": "text/javascript; charset=utf-8",
    "messages_es.js": "text/javascript; charset=utf-8",
    "waves.js": "text/javascript; charset=utf-8",
    "parcels.js": "text/javascript; charset=utf-8",
    "floor.js": "text/javascript; charset=utf-8",
    "itemcheck.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _static(name: str) -> bytes:
    return resources.files("edge_agent.http.web").joinpath("static", name).read_bytes()


def station_snapshot(agent: Agent, code: str, held: HeldLabels) -> dict[str, Any] | None:
    """What the station page shows about `code` right now; None if the station is unknown.

    `label_printer` says whether a label can print now (else the fault and its fix); `held` lists
    the station's held labels, oldest first (`held_count` counts them all).
    """
    station = agent.floor.get(code)
    if station is None:
        return None
    described = station.describe()
    held_labels, held_count = held.at(station)
    return {
        "station": code,
        "name": described.name,
        "warehouse": agent.identity.warehouse,
        # The warehouse's settings (weight_unit, item_check), as synced from the cloud.
        **agent.cache.warehouse_settings(agent.identity.warehouse).to_json(),
        "scale": described.scale.to_json() if described.scale is not None else None,
        "printers": [
            {"id": p.id, "role": p.role, "state": p.state, "message": p.message, **printer_said(lane, code)}
            for p, lane in zip(described.printers, station.printers, strict=True)
        ],
        "problems": described.problems,
        "label_printer": label_printer(agent.queue, station),
        "held": held_labels,
        "held_count": held_count,
        "online": agent.link.online,
        "credential_refused": agent.link.auth_refused,
        "outbox_depth": agent.outbox.depth(),
    }


def station_page_router(
    agent: Agent,
    credentials: LocalCredentials,
    *,
    tick_s: float = 0.2,
    heartbeat_s: float = 10.0,
    printer_recheck_s: float = 2.0,
    stream_lifetime_s: float = 120.0,
) -> APIRouter:
    """The station page's routes for `agent`."""
    router = APIRouter()
    page = _static("index.html")
    files = {name: (_static(name), media) for name, media in _STATIC.items()}
    rechecking: set[str] = set()
    held = HeldLabels(agent.queue)

    @router.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        response = Response(
            page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"}
        )
        # Opened on this PC: the page gets its session with it, the packer does nothing.
        fresh = loopback_session(request.scope, request.headers.get("cookie"), credentials)
        if fresh is not None:
            response.headers["set-cookie"] = fresh
        return response

    @router.get("/station/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise NotFound(f"the station page has no file {name[:64]}: reload the page", code="not_found")
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})

    @router.get("/api/v1/stations", summary="The stations this agent serves (for the station page)")
    async def stations() -> Response:
        body = [
            {"code": code, "name": station.name, "mode": station.mode}
            for code, station in sorted(agent.floor.stations.items())
        ]
        return Response(json.dumps({"stations": body}), media_type="application/json")

    async def recheck_printers(code: str) -> None:
        station = agent.floor.get(code)
        if station is None or code in rechecking:
            return
        rechecking.add(code)
        try:
            for lane in station.printers:
                if lane.state != "ready":
                    await lane.check()
        finally:
            rechecking.discard(code)

    async def stream(request: Request, code: str) -> AsyncIterator[bytes]:
        started = time.monotonic()
        last_sent = ""
        last_write = 0.0
        last_recheck = time.monotonic()
        yield b"retry: 1000\n\n"
        while time.monotonic() - started < stream_lifetime_s:
            snapshot = station_snapshot(agent, code, held)
            now = time.monotonic()
            if snapshot is None:
                yield b'event: gone\ndata: {"station": null}\n\n'
                return
            text = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":"))
            if text != last_sent:
                last_sent, last_write = text, now
                yield f"data: {text}\n\n".encode()
            elif now - last_write >= heartbeat_s:
                last_write = now
                yield b": still here\n\n"
            if now - last_recheck >= printer_recheck_s and any(
                p["state"] != "ready" for p in snapshot["printers"]
            ):
                last_recheck = now
                asyncio.get_running_loop().create_task(recheck_printers(code))
            if await request.is_disconnected():
                return
            await asyncio.sleep(tick_s)

    @router.get(
        "/api/v1/stations/{code}/events",
        summary="Server-sent events: the station's weight, devices, cloud link and outbox depth",
    )
    async def events(code: str, request: Request) -> StreamingResponse:
        if agent.floor.get(code[:32]) is None:
            raise NotFound(
                f"station {code[:32]} is not configured at this agent: pick one of "
                f"{', '.join(sorted(agent.floor.stations)) or '(none yet: wait for sync)'}",
                code="station_not_found",
            )
        return StreamingResponse(
            stream(request, code),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    return router
