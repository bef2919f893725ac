"""Staged template rollout: a version per warehouse ahead of the tenant's active one.

Revision ID: 0007_template_rollouts
Revises: 0006_users_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_template_rollouts"
down_revision: str | None = "0006_users_sessions"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A database made with create_all before migrations may already hold the table.
    if sa.inspect(op.get_bind()).has_table("template_rollouts"):
        return
    op.create_table(
        "template_rollouts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("warehouse_id", _ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", "warehouse_id", name="uq_template_rollouts_name_warehouse"),
    )


def downgrade() -> None:
    op.drop_table("template_rollouts")
