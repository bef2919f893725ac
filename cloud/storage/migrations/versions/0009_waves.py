"""Waves: batches of orders released to one station in print order.

Revision ID: 0009_waves
Revises: 0008_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_waves"
down_revision: str | None = "0008_webhooks"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A database made with create_all before migrations may already hold the table.
    if sa.inspect(op.get_bind()).has_table("waves"):
        return
    op.create_table(
        "waves",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("warehouse_id", _ID, nullable=False),
        sa.Column("station", sa.String(length=32), nullable=False),
        sa.Column("order_refs", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("waves")
