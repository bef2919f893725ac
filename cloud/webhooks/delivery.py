"""Webhooks: an OMS hears of order state changes, labelled parcels, shipped orders and exceptions,
signed, retried and logged.

    a write (state change, exception)  ──emit()──►  webhook_events (same transaction)
    dispatcher, every second            ──►  a delivery per subscriber and event  ──POST──►  OMS

Each POST carries `X-Dockside-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`,
`X-Dockside-Event`, `X-Dockside-Event-Id` and `X-Dockside-Delivery`. A delivery answered with
anything but 2xx (redirects are not followed) is retried with exponential backoff (1 s, 2 s, 4 s
... at most an hour apart) up to MAX_ATTEMPTS, and every attempt's outcome is kept. A subscriber
can replay every event since a point in time.

Several replicas may share one database, each running a dispatcher: a dispatcher first claims
the deliveries it will send (claimed_by, claimed_until, in one transaction: PostgreSQL skips rows
another dispatcher has locked, SQLite has one writer), so no two send the same delivery. A claim
that expires because its dispatcher died mid-delivery is taken again by another: delivery is at
least once, and a subscriber dedupes by `event_id` (body and X-Dockside-Event-Id header).

Every URL is checked by cloud.webhooks.targets when it is saved and again before each delivery.
The signing secret is sealed at rest (cloud/storage/sealed_secrets.py) and opened only to sign a delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import func, insert, or_, select, update

from cloud.storage import schema
from cloud.storage.sealed_secrets import seal, unseal
from cloud.storage.store import CloudStore, WriteTransaction, dumps, utcnow
from cloud.webhooks.targets import UnsafeWebhookUrl, WebhookTarget, webhook_target
from dockside.errors import InputError, NotFound

__all__ = [
    "CLAIM",
    "MAX_ATTEMPTS",
    "WebhookEvent",
    "create_subscription",
    "deliver_due",
    "disable_subscription",
    "emit",
    "list_deliveries",
    "list_subscriptions",
    "replay",
    "run_webhooks",
    "signature",
]

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
_MAX_BACKOFF_S = 3600.0
_TIMEOUT_S = 10.0
# A dispatcher claims few deliveries at a time, so the claim outlives sending them all even when
# every one runs into the timeout; a dead dispatcher's claims are taken again after CLAIM.
_BATCH = 10
CLAIM = timedelta(seconds=_BATCH * _TIMEOUT_S + 20)
_MAX_PER_ROUND = 1000
_DISPATCHER = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class WebhookEvent(StrEnum):
    """What a subscriber may hear of."""

    ORDER_STATE_CHANGED = "order.state_changed"
    EXCEPTION_OPENED = "exception.opened"
    EXCEPTION_UPDATED = "exception.updated"
    # Unusual activity (cloud/access/alerts.py): who, where and what, with the exception it opened.
    ALERT_RAISED = "alert.raised"
    # A parcel labelled at the edge: order_ref, parcel, tracking_number, carrier, service,
    # weight_g and dimensions_mm (cloud/orders/parcels.py).
    PARCEL_LABELLED = "parcel.labelled"
    # An order handed to its carrier (cloud/shipping/manifests.py): its parcels and tracking numbers.
    ORDER_SHIPPED = "order.shipped"


def emit(tx: WriteTransaction, tenant_id: int, kind: WebhookEvent, payloads: list[dict[str, Any]]) -> None:
    """Queue events for subscribers inside the writer's transaction (nothing is sent from here)."""
    if payloads:
        tx.conn.execute(
            insert(schema.webhook_events),
            [
                {"tenant_id": tenant_id, "kind": kind.value, "occurred_at": tx.now, "payload": dumps(payload)}
                for payload in payloads
            ],
        )


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Dockside-Signature header value for a body sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _subscription(row: Any, *, secret: str | None = None) -> dict[str, Any]:
    answer = {
        "id": row.id,
        "url": row.url,
        "events": row.events.split(","),
        "created_at": row.created_at.isoformat(),
        "active": row.disabled_at is None,
    }
    if secret is not None:
        answer["secret"] = secret
    return answer


def create_subscription(
    store: CloudStore, tenant_id: int, url: str, events: Collection[WebhookEvent]
) -> dict[str, Any]:
    """A new subscriber; the answer holds its signing secret, shown only this once.

    The URL must reach a public address (cloud.webhooks.targets): UnsafeWebhookUrl (422) otherwise.
    """
    webhook_target(url)
    if not events:
        raise InputError(f"subscribe to at least one event: {', '.join(WebhookEvent)}")
    table = schema.webhook_subscriptions
    secret = "whsec_" + secrets.token_urlsafe(32)
    with store.write() as tx:
        # Only events from now on: history is what replay is for.
        top = tx.conn.execute(
            select(func.max(schema.webhook_events.c.id)).where(schema.webhook_events.c.tenant_id == tenant_id)
        ).scalar()
        new_id = tx.conn.execute(
            insert(table)
            .values(
                tenant_id=tenant_id,
                url=url,
                secret=seal(secret),
                events=",".join(sorted({event.value for event in events})),
                cursor=int(top or 0),
                created_at=tx.now,
            )
            .returning(table.c.id)
        ).scalar_one()
        row = tx.conn.execute(select(table).where(table.c.id == new_id)).one()
    return _subscription(row, secret=secret)


def list_subscriptions(store: CloudStore, tenant_id: int) -> list[dict[str, Any]]:
    """A tenant's subscribers (without their secrets)."""
    table = schema.webhook_subscriptions
    with store.read() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant_id).order_by(table.c.id)).all()
    return [_subscription(row) for row in rows]


def _owned(conn: Any, tenant_id: int, subscription_id: int) -> Any:
    table = schema.webhook_subscriptions
    row = conn.execute(
        select(table).where(table.c.id == subscription_id, table.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise NotFound(f"there is no webhook {subscription_id}: list webhooks to find its id")
    return row


def disable_subscription(store: CloudStore, tenant_id: int, subscription_id: int) -> dict[str, Any]:
    """Stop sending to a subscriber (its log stays)."""
    table = schema.webhook_subscriptions
    with store.write() as tx:
        _owned(tx.conn, tenant_id, subscription_id)
        tx.conn.execute(
            update(table)
            .where(table.c.id == subscription_id, table.c.disabled_at.is_(None))
            .values(disabled_at=tx.now)
        )
        return _subscription(_owned(tx.conn, tenant_id, subscription_id))


def list_deliveries(
    store: CloudStore, tenant_id: int, subscription_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    """A subscriber's delivery log, newest first."""
    deliveries, events = schema.webhook_deliveries, schema.webhook_events
    with store.read() as conn:
        _owned(conn, tenant_id, subscription_id)
        rows = conn.execute(
            select(deliveries, events.c.kind, events.c.occurred_at)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.subscription_id == subscription_id)
            .order_by(deliveries.c.id.desc())
            .limit(min(limit, 1000))
        ).all()
    return [
        {
            "id": row.id,
            "event_id": row.event_id,
            "event": row.kind,
            "occurred_at": row.occurred_at.isoformat(),
            "status": row.status,
            "attempts": row.attempts,
            "last_status_code": row.last_status_code,
            "last_error": row.last_error,
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        }
        for row in rows
    ]


def replay(store: CloudStore, tenant_id: int, subscription_id: int, since: datetime) -> dict[str, Any]:
    """Queue again every subscribed event since `since` (the subscriber dedupes by event id)."""
    events = schema.webhook_events
    with store.write() as tx:
        row = _owned(tx.conn, tenant_id, subscription_id)
        ids = (
            tx.conn.execute(
                select(events.c.id)
                .where(
                    events.c.tenant_id == tenant_id,
                    events.c.occurred_at >= since,
                    events.c.id <= row.cursor,
                    events.c.kind.in_(row.events.split(",")),
                )
                .order_by(events.c.id)
            )
            .scalars()
            .all()
        )
        _queue(tx, subscription_id, list(ids))
    return {"webhook": subscription_id, "queued": len(ids)}


def _queue(tx: WriteTransaction, subscription_id: int, event_ids: list[int]) -> None:
    if event_ids:
        tx.conn.execute(
            insert(schema.webhook_deliveries),
            [
                {
                    "subscription_id": subscription_id,
                    "event_id": event_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": tx.now,
                    "created_at": tx.now,
                }
                for event_id in event_ids
            ],
        )


def _fan_out(store: CloudStore) -> None:
    """Turn new events into pending deliveries, one per interested subscriber."""
    subs, events = schema.webhook_subscriptions, schema.webhook_events
    with store.read() as conn:
        # Most clouds have no subscriber: then this round costs one read, never a write lock.
        if conn.execute(select(subs.c.id).where(subs.c.disabled_at.is_(None)).limit(1)).first() is None:
            return
    with store.write() as tx:
        active = select(subs).where(subs.c.disabled_at.is_(None)).order_by(subs.c.id)
        if tx.dialect == "postgresql":
            # Another replica fanning out a subscriber now holds its cursor: leave it to that one.
            active = active.with_for_update(skip_locked=True)
        for sub in tx.conn.execute(active).all():
            rows = tx.conn.execute(
                select(events.c.id, events.c.kind)
                .where(events.c.tenant_id == sub.tenant_id, events.c.id > sub.cursor)
                .order_by(events.c.id)
                .limit(10_000)
            ).all()
            if not rows:
                continue
            kinds = set(sub.events.split(","))
            _queue(tx, int(sub.id), [int(row.id) for row in rows if row.kind in kinds])
            tx.conn.execute(update(subs).where(subs.c.id == sub.id).values(cursor=rows[-1].id))


def deliver_due(
    store: CloudStore,
    client: httpx.Client,
    *,
    backoff_s: float = 1.0,
    now: datetime | None = None,
    dispatcher: str = _DISPATCHER,
) -> int:
    """Fan out new events, then claim and attempt the deliveries that are due; returns how many.

    `dispatcher` names this sender in its claims; two dispatchers on one database never attempt
    the same delivery while a claim holds.
    """
    _fan_out(store)
    moment = now or utcnow()
    attempted = 0
    while attempted < _MAX_PER_ROUND:
        claimed = _claim(store, dispatcher, moment)
        for row in claimed:
            _attempt(store, client, row, dispatcher, moment, backoff_s)
        attempted += len(claimed)
        if len(claimed) < _BATCH:
            break
    return attempted


def _claim(store: CloudStore, dispatcher: str, moment: datetime) -> list[Any]:
    """Claim up to _BATCH due deliveries for `dispatcher` in one transaction; returns them."""
    deliveries, subs, events = schema.webhook_deliveries, schema.webhook_subscriptions, schema.webhook_events
    free = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < moment)
    due = (
        select(deliveries.c.id)
        .join(subs, subs.c.id == deliveries.c.subscription_id)
        .where(
            deliveries.c.status == "pending",
            deliveries.c.next_attempt_at <= moment,
            subs.c.disabled_at.is_(None),
            free,
        )
        .order_by(deliveries.c.id)
        .limit(_BATCH)
    )
    with store.write() as tx:
        if tx.dialect == "postgresql":
            # Rows another dispatcher is claiming right now are skipped, not waited for.
            due = due.with_for_update(of=deliveries, skip_locked=True)
        ids = list(tx.conn.execute(due).scalars())
        if not ids:
            return []
        # The `free` condition again: a claim is taken only from nobody, or from an expired one.
        claimed = set(
            tx.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), free)
                .values(claimed_by=dispatcher, claimed_until=moment + CLAIM)
                .returning(deliveries.c.id)
            ).scalars()
        )
        rows = tx.conn.execute(
            select(
                deliveries, subs.c.url, subs.c.secret, events.c.kind, events.c.payload, events.c.occurred_at
            )
            .join(subs, subs.c.id == deliveries.c.subscription_id)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.id.in_(claimed))
            .order_by(deliveries.c.id)
        ).all()
    return list(rows)


def _post(
    client: httpx.Client, target: WebhookTarget, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST to the first of the target's checked addresses that takes the connection."""
    for index, url in enumerate(target.connect_urls):
        try:
            return client.post(
                url,
                content=body,
                headers=headers,
                timeout=_TIMEOUT_S,
                extensions=target.extensions,
                follow_redirects=False,
            )
        except httpx.ConnectError:
            if index == len(target.connect_urls) - 1:
                raise
    raise AssertionError("a webhook target always has an address")


def _attempt(
    store: CloudStore, client: httpx.Client, row: Any, dispatcher: str, moment: datetime, backoff_s: float
) -> None:
    """Send one claimed delivery and record the outcome (only while the claim is still ours)."""
    body = json.dumps(
        {
            "event_id": row.event_id,
            "event": row.kind,
            "occurred_at": row.occurred_at.isoformat(),
            "data": json.loads(row.payload),
        },
        separators=(",", ":"),
    ).encode()
    code: int | None = None
    error: str | None = None
    try:
        # Checked again now: the name may resolve elsewhere than when the subscription was saved.
        target = webhook_target(row.url)
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "X-Dockside-Event": row.kind,
            "X-Dockside-Event-Id": str(row.event_id),
            "X-Dockside-Delivery": str(row.id),
            "X-Dockside-Signature": signature(unseal(row.secret), int(time.time()), body),
        }
        if target.extensions:
            # A TLS connection made for one name is never reused for another on the same address.
            headers["Connection"] = "close"
        response = _post(client, target, body, headers)
        code = response.status_code
        if response.is_redirect:
            error = f"the subscriber answered {code} (a redirect, not followed): give the final URL"
        elif not 200 <= code < 300:
            error = f"the subscriber answered {code}"
    except UnsafeWebhookUrl as exc:
        error = f"not sent: {exc.message}"
    except httpx.HTTPError as exc:
        error = f"could not deliver: {exc.__class__.__name__}: {str(exc)[:200]}"
    attempts = int(row.attempts) + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": code,
        "last_error": error,
        "claimed_by": None,
        "claimed_until": None,
    }
    if error is None:
        values.update(status="delivered", delivered_at=utcnow())
    elif attempts >= MAX_ATTEMPTS:
        values.update(status="failed")
    else:
        delay = min(backoff_s * 2 ** (attempts - 1), _MAX_BACKOFF_S)
        values.update(next_attempt_at=moment + timedelta(seconds=delay))
    deliveries = schema.webhook_deliveries
    with store.write() as tx:
        tx.conn.execute(
            update(deliveries)
            .where(deliveries.c.id == row.id, deliveries.c.claimed_by == dispatcher)
            .values(**values)
        )


async def run_webhooks(store: CloudStore, stop: asyncio.Event, *, interval_s: float = 1.0) -> None:
    """Deliver webhooks every `interval_s` until `stop` is set (one dispatcher per process)."""
    with httpx.Client(follow_redirects=False) as client:
        while not stop.is_set():
            try:
                await asyncio.to_thread(deliver_due, store, client)
            except Exception:
                # A broken database moment must not end deliveries for good: log and go on.
                log.exception("webhook delivery round failed; trying again shortly")
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                continue
