"""The warehouse an audit entry belongs to, and each user's last accepted TOTP time step.

Revision ID: 0011_audit_scope_totp_step
Revises: 0010_sign_in_limits
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_audit_scope_totp_step"
down_revision: str | None = "0010_sign_in_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made with create_all before migrations may already hold the columns.
    audit_columns = {column["name"] for column in inspector.get_columns("audit_log")}
    if "warehouse" not in audit_columns:
        with op.batch_alter_table("audit_log") as batch:
            batch.add_column(sa.Column("warehouse", sa.String(length=32), nullable=True))
    user_columns = {column["name"] for column in inspector.get_columns("users")}
    if "totp_last_step" not in user_columns:
        with op.batch_alter_table("users") as batch:
            batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_last_step")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("warehouse")
