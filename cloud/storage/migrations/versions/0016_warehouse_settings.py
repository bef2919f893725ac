"""Warehouse settings: the unit its stations show weights in, and whether packers check items.

Warehouses made before keep showing kilograms and pack without an item check.

Revision ID: 0016_warehouse_settings
Revises: 0015_packers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_warehouse_settings"
down_revision: str | None = "0015_packers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the columns.
    columns = {column["name"] for column in inspector.get_columns("warehouses")}
    with op.batch_alter_table("warehouses") as batch:
        if "weight_unit" not in columns:
            batch.add_column(
                sa.Column("weight_unit", sa.String(length=2), nullable=False, server_default="kg")
            )
        if "item_check" not in columns:
            batch.add_column(sa.Column("item_check", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("warehouses") as batch:
        batch.drop_column("item_check")
        batch.drop_column("weight_unit")
