"""Webhook subscriptions: create, list, disable, the delivery log and replay (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloud import audit, webhooks
from cloud.api.callers import ManagesWebhooks, Store

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
WebhookId = Annotated[int, Path(ge=1, le=2**62)]


class SubscriptionIn(BaseModel):
    """Where to send which events."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=8, max_length=2000)]
    events: Annotated[list[webhooks.WebhookEvent], Field(min_length=1, max_length=10)]


class ReplayIn(BaseModel):
    """The point in time from which to send every subscribed event again."""

    model_config = ConfigDict(extra="forbid")

    since: datetime


@router.post("/webhooks", status_code=201, summary="Subscribe to order state changes and exceptions")
def create_webhook(body: SubscriptionIn, caller: ManagesWebhooks, store: Store) -> Any:
    """A new subscriber; the answer's `secret` signs every delivery and is shown only this once."""
    with store.unit_of_work():
        made = webhooks.create_subscription(store, caller.tenant_id, body.url, body.events)
        logged = {key: value for key, value in made.items() if key != "secret"}
        audit.record(store, caller, "create_webhook", "webhook", str(made["id"]), None, logged)
    return made


@router.get("/webhooks", summary="List webhook subscriptions")
def list_webhooks(caller: ManagesWebhooks, store: Store) -> Any:
    """The tenant's subscribers (never their secrets)."""
    return {"webhooks": webhooks.list_subscriptions(store, caller.tenant_id)}


@router.delete("/webhooks/{webhook_id}", summary="Stop a webhook subscription")
def disable_webhook(webhook_id: WebhookId, caller: ManagesWebhooks, store: Store) -> Any:
    """Stop sending to the subscriber; its delivery log stays."""
    with store.unit_of_work():
        after = webhooks.disable_subscription(store, caller.tenant_id, webhook_id)
        audit.record(store, caller, "disable_webhook", "webhook", str(webhook_id), None, after)
    return after


@router.get("/webhooks/{webhook_id}/deliveries", summary="A subscriber's delivery log")
def list_webhook_deliveries(
    webhook_id: WebhookId,
    caller: ManagesWebhooks,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Each delivery, newest first: event, status, attempts, last answer and error."""
    return {"deliveries": webhooks.list_deliveries(store, caller.tenant_id, webhook_id, limit)}


@router.post("/webhooks/{webhook_id}/replay", summary="Send events again from a point in time")
def replay_webhook(webhook_id: WebhookId, body: ReplayIn, caller: ManagesWebhooks, store: Store) -> Any:
    """Queue every subscribed event since `since` again (subscribers dedupe by event_id)."""
    with store.unit_of_work():
        done = webhooks.replay(store, caller.tenant_id, webhook_id, body.since)
        after = {**done, "since": body.since.isoformat()}
        audit.record(store, caller, "replay_webhook", "webhook", str(webhook_id), None, after)
    return done
