"""Packers: the people who sign in at a warehouse's stations, and the packer each edge event names.

Revision ID: 0015_packers
Revises: 0014_shipping
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_packers"
down_revision: str | None = "0014_shipping"
branch_labels = None
depends_on = None
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the table and columns.
    if not inspector.has_table("packers"):
        op.create_table(
            "packers",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("warehouse_id", _ID, nullable=False),
            sa.Column("name", sa.String(length=100), nullable=False),
            sa.Column("badge", sa.String(length=64), nullable=True),
            sa.Column("pin_hash", sa.Text(), nullable=True),
            sa.Column("disabled", sa.Boolean(), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("updated_at", _AT, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("warehouse_id", "badge", name="uq_packers_warehouse_badge"),
        )
    if "packer" not in {column["name"] for column in inspector.get_columns("order_events")}:
        with op.batch_alter_table("order_events") as batch:
            batch.add_column(sa.Column("packer", sa.BigInteger(), nullable=True))
    if "ix_order_events_warehouse_occurred" not in {
        index["name"] for index in inspector.get_indexes("order_events")
    }:
        op.create_index("ix_order_events_warehouse_occurred", "order_events", ["warehouse_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_order_events_warehouse_occurred", table_name="order_events")
    with op.batch_alter_table("order_events") as batch:
        batch.drop_column("packer")
    op.drop_table("packers")
