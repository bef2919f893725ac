"""Console users (argon2 password, TOTP second factor) and their sessions.

Revision ID: 0006_users_sessions
Revises: 0005_exceptions_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_users_sessions"
down_revision: str | None = "0005_exceptions_audit"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    # A database made with create_all before migrations may already hold the tables.
    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("tenant_id", _ID, nullable=False),
            sa.Column("email", sa.String(length=254), nullable=False),
            sa.Column("name", sa.String(length=100), nullable=False),
            sa.Column("role", sa.String(length=20), nullable=False),
            sa.Column("warehouses", sa.Text(), nullable=False),
            sa.Column("password_hash", sa.String(length=200), nullable=False),
            sa.Column("totp_secret", sa.String(length=64), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("disabled_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("email"),
        )
    if "user_sessions" not in existing:
        op.create_table(
            "user_sessions",
            sa.Column("id", _ID, autoincrement=True, nullable=False),
            sa.Column("user_id", _ID, nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("created_at", _AT, nullable=False),
            sa.Column("expires_at", _AT, nullable=False),
            sa.Column("revoked_at", _AT, nullable=True),
            sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("token_hash"),
        )


def downgrade() -> None:
    op.drop_table("user_sessions")
    op.drop_table("users")
