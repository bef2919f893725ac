"""Edge facts that contradict the cloud's view of an order, each opening an exception for a person.

A label that may or may not have printed (job_unknown), a template set aside at a station for
overrunning its render budget, an order packed after it was cancelled, a packed weight outside the
tolerance the rules allow: each opens an exception in the exception center (cloud.orders), in the
transaction that stores the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.fleet.agents import AgentIdentity
from cloud.orders.exceptions import ExceptionKind, open_exception
from cloud.storage.store import WriteTransaction
from cloud.sync.incoming_events import CheckedEvent
from dockside.orders import OrderState
from dockside.sync import EventKind

__all__ = ["EventConflicts", "Tolerance"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """What the rules said a packed parcel may weigh, decided before the write transaction."""

    expected_g: int
    tolerance_g: int


class EventConflicts:
    """Edge facts that contradict the cloud's view, each opening an exception for a person."""

    def __init__(self, tx: WriteTransaction, agent: AgentIdentity, tolerances: dict[str, Tolerance]) -> None:
        self._tx = tx
        self._agent = agent
        self._tolerances = tolerances
        self._found: list[dict[str, Any]] = []

    def _add(
        self, item: CheckedEvent, order: Any, kind: ExceptionKind, message: str, detail: dict[str, Any]
    ) -> None:
        self._found.append(
            {
                "tenant_id": self._agent.tenant_id,
                "warehouse_id": int(order.warehouse_id) if order is not None else self._agent.warehouse_id,
                "order_ref": item.event.order_ref or None,
                "kind": kind,
                "message": message,
                "detail": {"station": item.event.station, "agent": self._agent.agent_id, **detail},
                "event_id": item.event.event_id,
            }
        )

    def check(self, item: CheckedEvent, order: Any, state: str) -> None:
        """Note the exceptions `item` opens against `order` (in `state` before the event)."""
        event, ref = item.event, item.event.order_ref
        if event.kind == EventKind.JOB_UNKNOWN.value:
            self._add(
                item,
                order,
                ExceptionKind.JOB_UNKNOWN,
                f"the label of order {ref} may or may not have printed at station {event.station}: "
                "check the printer's output, then reprint or resolve",
                {"job_id": item.body.get("job_id"), "printer": item.body.get("printer")},
            )
        if (
            event.kind == EventKind.EXCEPTION_RAISED.value
            and item.body.get("reason") == "template_over_budget"
        ):
            # A template version set aside at a station: someone must fix it and publish anew.
            self._add(
                item,
                order,
                ExceptionKind.RAISED_AT_EDGE,
                str(item.body.get("message") or "a label template overran its render budget")[:1000],
                {
                    "template": item.body.get("template"),
                    "template_version": item.body.get("template_version"),
                },
            )
        if event.kind != EventKind.ORDER_PACKED.value or order is None:
            return
        if state == OrderState.CANCELLED.value:
            self._add(
                item,
                order,
                ExceptionKind.PACKED_AFTER_CANCEL,
                f"order {ref} was packed at station {event.station} after it was cancelled: "
                "stop the parcel before it ships",
                {"job_id": item.body.get("job_id")},
            )
        weight = item.packed_weight()
        decided = self._tolerances.get(event.event_id)
        if weight is None or decided is None:
            return
        expected, tolerance = decided.expected_g, decided.tolerance_g
        if abs(weight - expected) > tolerance:
            self._add(
                item,
                order,
                ExceptionKind.WEIGHT_OUT_OF_TOLERANCE,
                f"order {ref} weighed {weight} g, expected {expected} g ± {tolerance} g: "
                "check the parcel's contents",
                {
                    "weight_g": weight,
                    "expected_weight_g": expected,
                    "tolerance_g": tolerance,
                    "parcel": item.facts.number if item.facts is not None else 1,
                },
            )

    def open_all(self) -> None:
        """Open every exception found, in the batch's transaction."""
        for found in self._found:
            open_exception(self._tx, **found)
