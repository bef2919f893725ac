"""Sign-in failure counters, and webhook delivery claims so two replicas never send one twice.

Revision ID: 0010_sign_in_limits
Revises: 0009_waves
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_sign_in_limits"
down_revision: str | None = "0009_waves"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the table and columns.
    if not inspector.has_table("sign_in_failures"):
        op.create_table(
            "sign_in_failures",
            sa.Column("key_hash", sa.String(length=64), nullable=False),
            sa.Column("failures", sa.Integer(), nullable=False),
            sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("key_hash"),
        )
        op.create_index("ix_sign_in_failures_window", "sign_in_failures", ["window_started_at"])
    present = {column["name"] for column in inspector.get_columns("webhook_deliveries")}
    with op.batch_alter_table("webhook_deliveries") as batch:
        if "claimed_by" not in present:
            batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        if "claimed_until" not in present:
            batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    op.drop_index("ix_sign_in_failures_window", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
