"""Credential life cycle: token expiry, last use and creator; audit actor names; room for sealed
TOTP and webhook secrets; tenant-wide exceptions; known addresses, alert thresholds and alerts.

Secrets already stored in clear stay readable (cloud/storage/sealed_secrets.py tells the two forms
apart) and are sealed by `dockside-cloud rotate-secrets` or when next written.

Revision ID: 0013_credential_life_cycle
Revises: 0012_event_ids_per_agent
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_credential_life_cycle"
down_revision: str | None = "0012_event_ids_per_agent"
branch_labels = None
depends_on = None
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _columns(inspector: sa.Inspector, table: str) -> set[str]:
    return {column["name"] for column in inspector.get_columns(table)}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the tables and columns.
    token_columns = _columns(inspector, "api_tokens")
    with op.batch_alter_table("api_tokens") as batch:
        for name, column_type in (
            ("expires_at", sa.DateTime(timezone=True)),
            ("last_used_at", sa.DateTime(timezone=True)),
            ("created_by", sa.String(length=100)),
        ):
            if name not in token_columns:
                batch.add_column(sa.Column(name, column_type, nullable=True))
    if "actor_name" not in _columns(inspector, "audit_log"):
        with op.batch_alter_table("audit_log") as batch:
            batch.add_column(sa.Column("actor_name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.alter_column("secret", type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("order_exceptions") as batch:
        batch.alter_column("warehouse_id", existing_type=_ID, nullable=True)
    event_indexes = {index["name"] for index in inspector.get_indexes("order_events")}
    if "ix_order_events_kind_received" not in event_indexes:
        op.create_index("ix_order_events_kind_received", "order_events", ["kind", "received_at"])
    if not inspector.has_table("known_addresses"):
        op.create_table(
            "known_addresses",
            sa.Column("id", _ID, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("actor", sa.String(length=100), nullable=False),
            sa.Column("address", sa.String(length=64), nullable=False),
            sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("actor", "address", name="uq_known_addresses_actor_address"),
        )
    if not inspector.has_table("alert_thresholds"):
        op.create_table(
            "alert_thresholds",
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("window_s", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("tenant_id", "kind"),
        )
    if not inspector.has_table("alerts"):
        op.create_table(
            "alerts",
            sa.Column("id", _ID, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("exception_id", _ID, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["exception_id"], ["order_exceptions.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_alerts_subject", "alerts", ["tenant_id", "kind", "subject", "raised_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_subject", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_thresholds")
    op.drop_table("known_addresses")
    op.drop_index("ix_order_events_kind_received", table_name="order_events")
    with op.batch_alter_table("order_exceptions") as batch:
        batch.alter_column("warehouse_id", existing_type=_ID, nullable=False)
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.alter_column("secret", type_=sa.String(length=100), existing_nullable=False)
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(length=64), existing_nullable=False)
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor_name")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("created_by")
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
