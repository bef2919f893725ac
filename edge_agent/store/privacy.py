"""Purging personal data from the agent's cache once orders are shipped and some days have passed.

A packing station needs the ship-to only until the label is printed; after the order is shipped
(the cloud's sync body says when, `shipped_at`), the agent keeps the non-personal facts (country,
lines, weights, jobs) and blanks the rest: the ship-to's personal fields in the cached order and
the label bytes of its print jobs, which carry the address. Run it daily (the agent's scheduler).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from edge_agent.store.database import Store

__all__ = ["DEFAULT_KEEP_DAYS", "PERSONAL_FIELDS", "purge_shipped_personal_data"]

DEFAULT_KEEP_DAYS = 14
# The same fields as the cloud's erasure (cloud.orders.privacy); the agent does not import the cloud.
PERSONAL_FIELDS = ("name", "company", "street", "street2", "city", "region", "postal_code", "phone")


def _shipped_before(body: dict[str, object], cutoff: datetime) -> bool:
    shipped = body.get("shipped_at")
    if not isinstance(shipped, str):
        return False
    try:
        when = datetime.fromisoformat(shipped)
    except ValueError:
        return False
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) <= cutoff


def purge_shipped_personal_data(
    store: Store, *, keep_days: int = DEFAULT_KEEP_DAYS, now: datetime | None = None
) -> list[str]:
    """Blank personal data of orders shipped more than `keep_days` ago; returns their refs."""
    if keep_days < 0:
        raise ValueError("keep_days must be 0 or more")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    rows = store.conn.execute("SELECT order_ref, body FROM orders WHERE state = 'shipped'").fetchall()
    purged: list[str] = []
    with store.atomic():
        for order_ref, text in rows:
            body = json.loads(text)
            if not _shipped_before(body, cutoff):
                continue
            ship_to = dict(body.get("ship_to") or {})
            blanked = {**ship_to, **{field: "" for field in PERSONAL_FIELDS if field in ship_to}}
            jobs = store.conn.execute(
                "SELECT count(*) FROM jobs WHERE order_ref = ? AND length(label) > 0", (order_ref,)
            ).fetchone()[0]
            if blanked == ship_to and not jobs:
                continue
            body["ship_to"] = blanked
            store.conn.execute(
                "UPDATE orders SET body = ? WHERE order_ref = ?",
                (json.dumps(body, separators=(",", ":"), ensure_ascii=False), order_ref),
            )
            store.conn.execute("UPDATE jobs SET label = X'' WHERE order_ref = ?", (order_ref,))
            purged.append(order_ref)
    return purged
