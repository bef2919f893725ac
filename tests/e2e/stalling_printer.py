"""Kill the agent while a label is in its `sending` window: a printer that stops reading mid-label.

The pack path commits a job `sending`, hands the label to the printer, then commits `sent`.
A label the socket takes at once is in that window for microseconds, so a kill at a random
instant almost never lands there. A real printer holds the window open for seconds: when its
receive buffer fills during a batch it keeps the connection but stops reading, the TCP window
closes, and the agent's lane thread waits (up to its write timeout) with the rest of a label
unsent. The mock printer does this with its `stall` fault, and with a small device's TCP shape
(4 KB receive buffer, Ethernet's 1460-byte segments) so the agent's kernel buffers about a
hundred kilobytes, not the megabytes loopback allows.

A wave prints its labels back to back, so a few hundred normal labels fill that pipe whatever
the kernel's autotuning did; a single label would have to be larger than the agent allows
(256 KB). So the helper prints a wave into a stalled printer, waits until one job stays
`sending`, SIGKILLs the agent, then clears the stall so the printer reads what the dead
connection still delivers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from bench.stack import Process, Stack, wait_for

__all__ = ["WAVE_ORDERS", "StuckJob", "kill_agent_while_sending", "start_small_printer"]

# About 1.6 KB a label: some 480 KB, several times what the TCP buffers take with the small shape.
WAVE_ORDERS = 300


def start_small_printer(stack: Stack, serial: str, name: str = "printer") -> Process:
    """The mock Zebra with a small device's TCP shape, as `stack.start_printer` starts it otherwise."""
    return stack.spawn(
        name,
        [
            "dockside-mock",
            "printer",
            "--port",
            "0",
            "--control-port",
            "0",
            "--language",
            "zpl",
            "--serial",
            serial,
            "--receive-buffer",
            "4096",
            "--mss",
            "1460",
        ],
    )


class StuckJob:
    """The job a kill interrupted: its id and order, and the wave's other labels at that moment:
    `printed_before` (the printer confirmed them) and `sent_before` (they went out, unconfirmed)."""

    def __init__(
        self, job_id: str, order_ref: str, printed_before: list[str], sent_before: list[str]
    ) -> None:
        self.job_id = job_id
        self.order_ref = order_ref
        self.printed_before = printed_before
        self.sent_before = sent_before


def _wave_jobs(client: httpx.Client, wave_id: int, status: str) -> list[tuple[str, str]]:
    """(job id, order) of the wave's orders whose job is `status`, as the agent's API shows them."""
    orders: list[dict[str, Any]] = client.get(f"/api/v1/waves/{wave_id}").json()["orders"]
    return [(order["job_id"], order["order_ref"]) for order in orders if order.get("job_status") == status]


def _stuck_sending(client: httpx.Client, wave_id: int) -> tuple[str, str] | None:
    """The wave's job that is `sending` and still is a moment later (blocked, not just passing)."""
    first = _wave_jobs(client, wave_id, "sending")
    if not first:
        return None
    time.sleep(0.2)
    return first[0] if _wave_jobs(client, wave_id, "sending") == first else None


def kill_agent_while_sending(stack: Stack, client: httpx.Client, wave_id: int, request_id: str) -> StuckJob:
    """Print wave `wave_id` into a stalled printer and SIGKILL the agent while a label is blocked.

    Returns once the agent is dead and the printer has read (and printed, or discarded as cut
    off) everything the dead connection delivered. The caller restarts the agent.
    """
    wait_for(
        lambda: client.get(f"/api/v1/waves/{wave_id}").status_code == 200,
        timeout=30,
        what=f"wave {wave_id} to reach the agent",
    )
    stack.control("printer", "POST", "/fault", {"fault": "stall"})
    answers: list[httpx.Response | Exception] = []

    def print_wave() -> None:
        try:
            answers.append(
                client.post(
                    f"/api/v1/waves/{wave_id}/print", json={"station": "S1", "request_id": request_id}
                )
            )
        except httpx.TransportError as exc:  # the agent died under the request, as intended
            answers.append(exc)

    printing = threading.Thread(target=print_wave, name="print wave into a stalled printer")
    printing.start()
    try:
        job_id, order_ref = wait_for(
            lambda: _stuck_sending(client, wave_id),
            timeout=30,
            interval=0.01,
            what="a wave label to block in `sending` while the printer stalls",
        )
        # Still inside the window: the printer stopped in the middle of a label and the agent has
        # not given up on it (its write timeout is 5 s).
        assert stack.control("printer", "GET", "/status")["stalled_connections"] == 1
        sent_before = [order_ref for _, order_ref in _wave_jobs(client, wave_id, "sent")]
        printed_before = [order_ref for _, order_ref in _wave_jobs(client, wave_id, "printed")]
        stack.processes["agent"].stop(kill=True)
    finally:
        printing.join(timeout=60)
    assert answers, "the wave's request neither answered nor failed"
    assert isinstance(answers[0], httpx.TransportError), f"the wave finished before the kill: {answers}"
    stack.control("printer", "POST", "/fault", {"fault": "none"})

    def connection_read() -> bool:
        status = stack.control("printer", "GET", "/status")
        return status["stalled_connections"] == 0 and status["connections_open"] == 0

    wait_for(connection_read, timeout=30, what="the printer to read what the killed agent had sent")
    # Confirmed a moment before the kill: in the count above as sent, now printed. Either list
    # holds it, never both.
    sent_before = [ref for ref in sent_before if ref not in printed_before]
    return StuckJob(job_id, order_ref, printed_before, sent_before)
