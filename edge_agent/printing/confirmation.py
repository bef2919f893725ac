"""Confirmed printing's rules for the print queue: when a job is settled, what a packer reads of a
label its printer could not confirm, and how long and how often the queue asks.

A label is `sent` when its bytes went out and `printed` once its printer confirms it (see
`edge_agent.devices.print_confirmation` for how an answer confirms labels). The queue asks the
printer right after a send, then every CONFIRM_POLL_S while labels wait (CONFIRM_IDLE_POLL_S while
they are held in a faulted printer or it does not answer), and gives a label up after the
confirmation timeout (agent.toml's `packing.print_confirm_timeout_s`, 30 s by default;
`DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S` wins over it): it stays `sent`, with
a message telling the packer to check that it came out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.printing.jobs import Job, JobStatus

__all__ = [
    "CONFIRM_IDLE_POLL_S",
    "CONFIRM_POLL_S",
    "CONFIRM_TIMEOUT_ENV",
    "DEFAULT_CONFIRM_TIMEOUT_S",
    "confirm_timeout_from_env",
    "settled",
    "unconfirmable_message",
]

# How long a printer may take to confirm a label before the packer is asked to check it (seconds).
CONFIRM_TIMEOUT_ENV = "DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S"
DEFAULT_CONFIRM_TIMEOUT_S = 30.0


def confirm_timeout_from_env(
    env: Mapping[str, str] | None = None, default: float = DEFAULT_CONFIRM_TIMEOUT_S
) -> float:
    """The confirmation timeout `DOCKSIDE_PRINT_CONFIRM_TIMEOUT_S` sets, else `default` (agent.toml's
    `packing.print_confirm_timeout_s`, 30 s); ValueError naming the variable for anything but
    seconds above 0 and at most 3600."""
    text = (os.environ if env is None else env).get(CONFIRM_TIMEOUT_ENV, "").strip()
    if not text:
        return default
    try:
        value = float(text) if len(text) <= 16 else -1.0
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ValueError(
            f"{CONFIRM_TIMEOUT_ENV} must be seconds above 0 and at most 3600 (got {text[:20]!r}): "
            "fix or unset it"
        )
    return value


def settled(job: Job) -> bool:
    """Whether the printer has had its say on `job`: not still going out (`sending`) nor `sent` and
    waiting for confirmation (a `sent` job with a message is one its printer could not confirm)."""
    if job.status == JobStatus.SENDING:
        return False
    return not (job.status == JobStatus.SENT and not job.message)


def unconfirmable_message(lane: PrinterLane, station: str, why: str) -> str:
    """What the packer reads of a label that went out but that its printer could not confirm."""
    return (
        f"{lane.name} at {station} could not confirm this label ({why}): check that the label came "
        "out, and use Reprint if it did not"
    )


# How long the confirmation loop waits between status queries while labels await confirmation:
# briskly while they should come out any moment, slowly while the printer is faulted or silent.
CONFIRM_POLL_S = 0.15
CONFIRM_IDLE_POLL_S = 1.0
