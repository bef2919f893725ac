"""Webhooks: subscriptions, the events they hear of, and every delivery attempt's outcome.

Revision ID: 0008_webhooks
Revises: 0007_template_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_webhooks"
down_revision: str | None = "0007_template_rollouts"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    # A database made with create_all before migrations may already hold the tables.
    if "webhook_subscriptions" not in existing:
        op.create_table(
            "webhook_subscriptions",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("url", sa.String(length=2000), nullable=False),
            sa.Column("secret", sa.String(length=100), nullable=False),
            sa.Column("events", sa.String(length=200), nullable=False),
            sa.Column("cursor", sa.BigInteger(), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("disabled_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
    if "webhook_events" not in existing:
        op.create_table(
            "webhook_events",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("kind", sa.String(length=40), nullable=False),
            sa.Column("occurred_at", _AT, nullable=False),
            sa.Column("payload", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_webhook_events_tenant", "webhook_events", ["tenant_id", "id"])
    if "webhook_deliveries" not in existing:
        op.create_table(
            "webhook_deliveries",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("subscription_id", _ID, nullable=False),
            sa.Column("event_id", _ID, nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_at", _AT, nullable=False),
            sa.Column("last_status_code", sa.Integer(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("delivered_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["subscription_id"], ["webhook_subscriptions.id"]),
            sa.ForeignKeyConstraint(["event_id"], ["webhook_events.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_subscriptions")
