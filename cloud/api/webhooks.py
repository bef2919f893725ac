"""Webhook subscriptions: create, list, disable, the delivery log and replay (admin only).

Webhooks belong to the whole tenant: a subscriber (the brand's OMS) hears of every warehouse's
orders and exceptions. So only a tenant-wide admin manages them; an admin limited to some
warehouses is refused (403, saying to use a tenant-wide token) on every webhook call, because a
subscription it made would hear of warehouses it may not see, and listing or replaying existing
subscriptions would show other warehouses' deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloud.access.callers import ManagesWebhooks, Store
from cloud.access.principals import Principal
from cloud.access.roles import Forbidden
from cloud.records import audit
from cloud.webhooks import delivery as webhooks

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
WebhookId = Annotated[int, Path(ge=1, le=2**62)]


def tenant_wide_webhook_admin(caller: ManagesWebhooks) -> Principal:
    """The caller, if it is an admin of the whole tenant (webhooks hear of every warehouse)."""
    if caller.warehouses is not None:
        raise Forbidden(
            "webhooks hear of every warehouse of the tenant, and this token is limited to warehouses "
            f"{', '.join(sorted(caller.warehouses))}: "
            "manage webhooks with an admin token for the whole tenant"
        )
    return caller


WebhookAdmin = Annotated[Principal, Depends(tenant_wide_webhook_admin)]


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
def create_webhook(body: SubscriptionIn, caller: WebhookAdmin, store: Store) -> Any:
    """A new subscriber; the answer's `secret` signs every delivery and is shown only this once."""
    with store.unit_of_work():
        made = webhooks.create_subscription(store, caller.tenant_id, body.url, body.events)
        logged = {key: value for key, value in made.items() if key != "secret"}
        audit.record(store, caller, "create_webhook", "webhook", str(made["id"]), None, logged)
    return made


@router.get("/webhooks", summary="List webhook subscriptions")
def list_webhooks(caller: WebhookAdmin, store: Store) -> Any:
    """The tenant's subscribers (never their secrets)."""
    return {"webhooks": webhooks.list_subscriptions(store, caller.tenant_id)}


@router.delete("/webhooks/{webhook_id}", summary="Stop a webhook subscription")
def disable_webhook(webhook_id: WebhookId, caller: WebhookAdmin, store: Store) -> Any:
    """Stop sending to the subscriber; its delivery log stays."""
    with store.unit_of_work():
        after = webhooks.disable_subscription(store, caller.tenant_id, webhook_id)
        audit.record(store, caller, "disable_webhook", "webhook", str(webhook_id), None, after)
    return after


@router.get("/webhooks/{webhook_id}/deliveries", summary="A subscriber's delivery log")
def list_webhook_deliveries(
    webhook_id: WebhookId,
    caller: WebhookAdmin,
    store: Store,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Each delivery, newest first: event, status, attempts, last answer and error."""
    return {"deliveries": webhooks.list_deliveries(store, caller.tenant_id, webhook_id, limit)}


@router.post("/webhooks/{webhook_id}/replay", summary="Send events again from a point in time")
def replay_webhook(webhook_id: WebhookId, body: ReplayIn, caller: WebhookAdmin, store: Store) -> Any:
    """Queue every subscribed event since `since` again (subscribers dedupe by event_id)."""
    with store.unit_of_work():
        done = webhooks.replay(store, caller.tenant_id, webhook_id, body.since)
        after = {**done, "since": body.since.isoformat()}
        audit.record(store, caller, "replay_webhook", "webhook", str(webhook_id), None, after)
    return done
