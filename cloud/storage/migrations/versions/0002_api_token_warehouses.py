"""API tokens limited to some warehouses of their tenant (roles and scope enforcement).

Revision ID: 0002_api_token_warehouses
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_api_token_warehouses"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made with create_all before migrations may already hold the table.
    if sa.inspect(op.get_bind()).has_table("api_token_warehouses"):
        return
    op.create_table(
        "api_token_warehouses",
        sa.Column("token_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("warehouse_code", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"]),
        sa.PrimaryKeyConstraint("token_id", "warehouse_code"),
    )


def downgrade() -> None:
    op.drop_table("api_token_warehouses")
