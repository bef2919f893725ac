"""Shipping: carrier accounts, number ranges and the blocks leased to agents, tracking numbers seen
used or voided, parcels and manifests.

Revision ID: 0014_shipping
Revises: 0013_credential_life_cycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_shipping"
down_revision: str | None = "0013_credential_life_cycle"
branch_labels = None
depends_on = None
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the tables.
    if not inspector.has_table("carriers"):
        op.create_table(
            "carriers",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("code", sa.String(length=32), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("tracking", sa.Text(), nullable=False),
            sa.Column("secret", sa.Text(), nullable=True),
            sa.Column("low_water", sa.BigInteger(), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("updated_at", _AT, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("tenant_id", "code", name="uq_carriers_tenant_code"),
        )
    if not inspector.has_table("number_ranges"):
        op.create_table(
            "number_ranges",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("carrier", sa.String(length=32), nullable=False),
            sa.Column("first", sa.BigInteger(), nullable=False),
            sa.Column("last", sa.BigInteger(), nullable=False),
            sa.Column("next_free", sa.BigInteger(), nullable=False),
            sa.Column("format", sa.Text(), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_number_ranges_carrier", "number_ranges", ["tenant_id", "carrier", "first"])
    if not inspector.has_table("number_leases"):
        op.create_table(
            "number_leases",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("carrier", sa.String(length=32), nullable=False),
            sa.Column("range_id", _ID, nullable=True),
            sa.Column("agent_id", sa.String(length=40), nullable=False),
            sa.Column("first", sa.BigInteger(), nullable=False),
            sa.Column("last", sa.BigInteger(), nullable=False),
            sa.Column("used_through", sa.BigInteger(), nullable=True),
            sa.Column("retired", sa.Boolean(), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["range_id"], ["number_ranges.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_number_leases_agent", "number_leases", ["tenant_id", "carrier", "agent_id"])
    if not inspector.has_table("tracking_numbers"):
        op.create_table(
            "tracking_numbers",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("carrier", sa.String(length=32), nullable=False),
            sa.Column("tracking_number", sa.String(length=40), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("order_ref", sa.String(length=64), nullable=True),
            sa.Column("parcel", sa.Integer(), nullable=True),
            sa.Column("agent_id", sa.String(length=40), nullable=True),
            sa.Column("lease_id", _ID, nullable=True),
            sa.Column("serial", sa.BigInteger(), nullable=True),
            sa.Column("job_id", sa.String(length=64), nullable=True),
            sa.Column("at", _AT, nullable=False),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("tenant_id", "carrier", "tracking_number", name="uq_tracking_numbers_number"),
        )
    if not inspector.has_table("manifests"):
        op.create_table(
            "manifests",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("warehouse_id", _ID, nullable=False),
            sa.Column("carrier", sa.String(length=32), nullable=False),
            sa.Column("parcel_count", sa.Integer(), nullable=False),
            sa.Column("total_weight_g", sa.BigInteger(), nullable=False),
            sa.Column("created_by", sa.String(length=100), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("handed_over_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_manifests_tenant", "manifests", ["tenant_id", "id"])
    if not inspector.has_table("parcels"):
        op.create_table(
            "parcels",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("order_ref", sa.String(length=64), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("tracking_number", sa.String(length=40), nullable=False),
            sa.Column("carrier", sa.String(length=32), nullable=False),
            sa.Column("service", sa.String(length=64), nullable=False),
            sa.Column("weight_g", sa.BigInteger(), nullable=True),
            sa.Column("dimensions_mm", sa.Text(), nullable=True),
            sa.Column("documents", sa.Text(), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("manifest_id", _ID, nullable=True),
            sa.Column("labelled_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["manifest_id"], ["manifests.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("tenant_id", "order_ref", "number", name="uq_parcels_order_number"),
        )
        op.create_index("ix_parcels_carrier_state", "parcels", ["tenant_id", "carrier", "state"])
        op.create_index("ix_parcels_manifest", "parcels", ["manifest_id"])


def downgrade() -> None:
    op.drop_index("ix_parcels_manifest", table_name="parcels")
    op.drop_index("ix_parcels_carrier_state", table_name="parcels")
    op.drop_table("parcels")
    op.drop_index("ix_manifests_tenant", table_name="manifests")
    op.drop_table("manifests")
    op.drop_table("tracking_numbers")
    op.drop_index("ix_number_leases_agent", table_name="number_leases")
    op.drop_table("number_leases")
    op.drop_index("ix_number_ranges_carrier", table_name="number_ranges")
    op.drop_table("number_ranges")
    op.drop_table("carriers")
