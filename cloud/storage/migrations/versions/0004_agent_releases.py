"""Agent releases: signed binaries, their assignment to warehouses, and agents' update outcomes.

Revision ID: 0004_agent_releases
Revises: 0003_ruleset_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_agent_releases"
down_revision: str | None = "0003_ruleset_versions"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A database made with create_all before migrations may already hold the tables.
    if sa.inspect(op.get_bind()).has_table("agent_releases"):
        return
    op.create_table(
        "agent_releases",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("binary", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "version", name="uq_agent_releases_tenant_version"),
    )
    op.create_table(
        "agent_release_assignments",
        sa.Column("warehouse_id", _ID, sa.ForeignKey("warehouses.id"), primary_key=True, autoincrement=False),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_update_reports",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", _ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agent_update_reports_version", "agent_update_reports", ["tenant_id", "version", "id"])
    op.create_index("ix_agent_update_reports_agent", "agent_update_reports", ["agent_id", "id"])


def downgrade() -> None:
    op.drop_table("agent_update_reports")
    op.drop_table("agent_release_assignments")
    op.drop_table("agent_releases")
