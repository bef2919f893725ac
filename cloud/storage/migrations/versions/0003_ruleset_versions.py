"""Decision-center rulesets: immutable numbered versions per name, one active.

Revision ID: 0003_ruleset_versions
Revises: 0002_api_token_warehouses
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ruleset_versions"
down_revision: str | None = "0002_api_token_warehouses"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A database made with create_all before migrations may already hold the table.
    if sa.inspect(op.get_bind()).has_table("ruleset_versions"):
        return
    op.create_table(
        "ruleset_versions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_ruleset_versions_name_version"),
    )


def downgrade() -> None:
    op.drop_table("ruleset_versions")
