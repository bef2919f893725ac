"""The exception center's exceptions and the audit log of admin writes.

Revision ID: 0005_exceptions_audit
Revises: 0004_agent_releases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_exceptions_audit"
down_revision: str | None = "0004_agent_releases"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    # A database made with create_all before migrations may already hold the tables.
    if "order_exceptions" not in existing:
        op.create_table(
            "order_exceptions",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("warehouse_id", _ID, nullable=False),
            sa.Column("order_ref", sa.String(length=64), nullable=True),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("assignee", sa.String(length=100), nullable=True),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.Column("event_id", sa.String(length=64), nullable=True),
            sa.Column("comment", sa.Text(), nullable=True),
            sa.Column("opened_at", _AT, nullable=False),
            sa.Column("updated_at", _AT, nullable=False),
            sa.Column("resolved_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_order_exceptions_status", "order_exceptions", ["tenant_id", "status", "id"])
    if "audit_log" not in existing:
        op.create_table(
            "audit_log",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("at", _AT, nullable=False),
            sa.Column("actor", sa.String(length=100), nullable=False),
            sa.Column("role", sa.String(length=20), nullable=False),
            sa.Column("action", sa.String(length=64), nullable=False),
            sa.Column("object_kind", sa.String(length=32), nullable=False),
            sa.Column("object_key", sa.String(length=200), nullable=False),
            sa.Column("before", sa.Text(), nullable=True),
            sa.Column("after", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_audit_log_object", "audit_log", ["tenant_id", "object_kind", "object_key", "id"])
        op.create_index("ix_audit_log_actor", "audit_log", ["tenant_id", "actor", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("order_exceptions")
