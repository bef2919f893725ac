"""Edge event ids are unique within a tenant, no longer across every tenant.

An id already stored for another tenant used to make a new event look like a redelivery: it was
acknowledged and dropped. Now another tenant's ids cannot collide, and within a tenant the cloud
compares a repeated id's event with the stored one (acked when it is the same, rejected when not).

Revision ID: 0012_event_ids_per_agent
Revises: 0011_audit_scope_totp_step
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_event_ids_per_agent"
down_revision: str | None = "0011_audit_scope_totp_step"
branch_labels = None
depends_on = None

_NEW = "uq_order_events_tenant_event"
# The baseline's constraint has no name of its own: PostgreSQL called it order_events_event_id_key,
# SQLite keeps it nameless, and batch mode on SQLite finds it by this convention.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    uniques = sa.inspect(op.get_bind()).get_unique_constraints("order_events")
    if any(u["name"] == _NEW for u in uniques):  # made by create_all before migrations
        return
    old = next((u for u in uniques if u["column_names"] == ["event_id"]), None)
    with op.batch_alter_table("order_events", naming_convention=_NAMING) as batch:
        if old is not None:
            batch.drop_constraint(str(old["name"] or "uq_order_events_event_id"), type_="unique")
        batch.create_unique_constraint(_NEW, ["tenant_id", "event_id"])


def downgrade() -> None:
    with op.batch_alter_table("order_events", naming_convention=_NAMING) as batch:
        batch.drop_constraint(_NEW, type_="unique")
        batch.create_unique_constraint("uq_order_events_event_id", ["event_id"])
