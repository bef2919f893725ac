"""The cloud's tables, in one place, with types that mean the same on SQLite and PostgreSQL.

JSON documents are stored as TEXT holding exactly the bytes the sync sends, so a snapshot or a
change never re-serialises them. Timestamps are timezone-aware UTC on the way in and out.

Why one file past 600 lines: it is declarations, not logic. Every table shares one MetaData
(what the migrations compare against) and refers to tenants, warehouses and the others by name,
so the tables are one graph; split by capability, most groups would still point into the others
and a reader would chase a foreign key across files. Where a table's name does not say which
capability keeps it, its comment names the module, so "whose table is this" reads here and
"what does a row hold" is one search away. The few helpers above the tables (UtcDateTime, one_of,
insert_rows) depend on these column types and are used as `schema.<name>` beside the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    any_,
    bindparam,
    false,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

__all__ = [
    "DEFAULT_TENANT",
    "UtcDateTime",
    "agent_release_assignments",
    "agent_releases",
    "agent_update_reports",
    "agents",
    "alert_thresholds",
    "alerts",
    "api_token_warehouses",
    "api_tokens",
    "audit_log",
    "carriers",
    "changes",
    "enrollment_tokens",
    "insert_rows",
    "known_addresses",
    "manifests",
    "metadata",
    "number_leases",
    "number_ranges",
    "one_of",
    "order_events",
    "order_exceptions",
    "orders",
    "packers",
    "parcels",
    "ruleset_versions",
    "sign_in_failures",
    "stations",
    "sync_clock",
    "template_rollouts",
    "template_versions",
    "tenants",
    "tracking_numbers",
    "user_sessions",
    "users",
    "warehouses",
    "waves",
    "webhook_deliveries",
    "webhook_events",
    "webhook_subscriptions",
]

DEFAULT_TENANT = "default"


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time stored as UTC; refuses naive datetimes so no local clock sneaks in."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store the UTC wall clock and re-attach UTC when reading.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def one_of(column: ColumnElement[Any], values: Sequence[Any], dialect: Dialect) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)` with the values as one array
    parameter, since building and parsing thousands of placeholders (a batch of 2,000 event
    ids) costs more than the lookup itself."""
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows of one shape (bulk ingest, the change log) in as few round trips as can be.

    Bulk writes stamp every row with the transaction's one `now`, so each column's own bind
    conversion (UtcDateTime's UTC rule and refusal of naive values, SQLite's text format) runs
    once per distinct timestamp instead of once per row, and the rows go to the driver as plain
    tuples: COPY on PostgreSQL (psycopg's executemany would still be one INSERT per row),
    one executemany on SQLite.
    """
    if not rows:
        return
    names = list(rows[0])
    dialect = conn.dialect
    conversions = [
        (index, convert)
        for index, name in enumerate(names)
        if (convert := _converter(table.c[name].type, dialect)) is not None
    ]
    values: list[tuple[Any, ...]] = []
    for mapping in rows:
        record = [mapping[name] for name in names]
        for index, convert in conversions:
            record[index] = convert(record[index])
        values.append(tuple(record))
    columns = ", ".join(f'"{name}"' for name in names)
    if dialect.name != "postgresql":
        marks = ", ".join("?" * len(names))
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})', values)  # noqa: S608
        return
    raw = conn.connection.driver_connection
    assert raw is not None  # a live connection inside the caller's transaction
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
        for converted in values:
            copy.write_row(converted)


def _converter(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column's bind conversion for `dialect`; for timestamps, run once per distinct value."""
    # The dialect's own variant (SQLite's DATETIME writes the text SQLAlchemy reads and compares).
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if not isinstance(column_type, UtcDateTime):
        # psycopg adapts Python values itself; SQLite's text, integer and boolean need nothing.
        return process if dialect.name != "postgresql" else None
    seen: dict[int, tuple[Any, Any]] = {}

    def once(value: Any) -> Any:
        if value is None:
            return None
        hit = seen.get(id(value))
        if hit is None or hit[0] is not value:
            hit = seen[id(value)] = (value, process(value) if process is not None else value)
        return hit[1]

    return once


# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-numbered rowid.
Id: Any = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

# One row (id 1): the last revision handed out and the compaction horizon. Updating this row
# inside every synced write serialises those writes, so commit order equals revision order.
sync_clock = Table(
    "sync_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", BigInteger, nullable=False),
    Column("horizon", BigInteger, nullable=False),
)

warehouses = Table(
    "warehouses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("ship_from", Text, nullable=True),  # JSON Address or NULL
    # Settings the warehouse's stations follow: the unit weights are shown in, and whether
    # packers scan each order line's items before weighing (cloud/fleet/warehouses.py).
    Column("weight_unit", String(2), nullable=False, server_default="kg"),
    Column("item_check", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_warehouses_tenant_code"),
)

stations = Table(
    "stations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("body", Text, nullable=False),  # the station's sync body (JSON)
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("warehouse_id", "code", name="uq_stations_warehouse_code"),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("agent_id", String(40), nullable=True),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("credential_hash", String(64), nullable=False, unique=True),
    Column("hostname", String(253), nullable=False, default=""),
    Column("version", String(64), nullable=False, default=""),
    Column("enrolled_at", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=True),
    Column("revision", BigInteger, nullable=False, default=0),
    Column("outbox_depth", BigInteger, nullable=False, default=0),
    Column("devices", Text, nullable=False, default="[]"),  # JSON list of DeviceStatus
    Column("revoked_at", UtcDateTime, nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    # Credential life cycle (cloud/access/principals.py): NULL expires_at never expires; last_used_at is
    # written at most once a minute per token and process; created_by is the creator's actor id.
    Column("expires_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("created_by", String(100), nullable=True),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("language", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("sample_data", Text, nullable=False),  # JSON object
    Column("width_dots", Integer, nullable=False),
    Column("height_dots", Integer, nullable=False),
    Column("dpi", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("published_at", UtcDateTime, nullable=True),
    UniqueConstraint("tenant_id", "name", "version", name="uq_template_versions_name_version"),
    Index("ix_template_versions_active", "tenant_id", "active"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("body", Text, nullable=False),  # the Order's canonical JSON, as synced
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "order_ref", name="uq_orders_tenant_ref"),
    Index("ix_orders_warehouse", "warehouse_id", "id"),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Unique within a tenant (not across tenants): another tenant's ids can never collide.
    Column("event_id", String(64), nullable=False),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=True),
    Column("order_ref", String(64), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("source", String(16), nullable=False),  # "edge" or "cloud"
    Column("station", String(32), nullable=False, default=""),
    Column("agent_id", String(40), nullable=True),
    Column("sequence", BigInteger, nullable=False, default=0),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),  # JSON object
    # The packer signed in at the station when the agent recorded it (the packers table's id).
    Column("packer", BigInteger, nullable=True),
    Index("ix_order_events_order", "order_id", "occurred_at"),
    # The packing report reads one warehouse's events over a time range (cloud/records/packing_report.py).
    Index("ix_order_events_warehouse_occurred", "warehouse_id", "occurred_at"),
    UniqueConstraint("tenant_id", "event_id", name="uq_order_events_tenant_event"),
    # The alert scan counts recent reprints and voids per station (cloud/access/alerts.py).
    Index("ix_order_events_kind_received", "kind", "received_at"),
)

# The change log the Watch stream reads: revision order is commit order (see sync_clock).
changes = Table(
    "changes",
    metadata,
    Column("revision", BigInteger, primary_key=True, autoincrement=False),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=True),  # NULL: every warehouse
    Column("kind", String(32), nullable=False),
    Column("key", String(200), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("body", Text, nullable=False, default=""),
    Column("recorded_at", UtcDateTime, nullable=False),
)

# The warehouses an API token is limited to; a token with no rows here sees the whole tenant.
api_token_warehouses = Table(
    "api_token_warehouses",
    metadata,
    Column("token_id", Id, ForeignKey("api_tokens.id"), primary_key=True, autoincrement=False),
    Column("warehouse_code", String(32), primary_key=True),
)

# Decision-center rulesets: immutable numbered versions per name; the published one is active.
ruleset_versions = Table(
    "ruleset_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),  # JSON: default, rules, sku_tags
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=False),
    Column("published_at", UtcDateTime, nullable=True),
    UniqueConstraint("tenant_id", "name", "version", name="uq_ruleset_versions_name_version"),
)

# Agent releases (cloud/fleet/releases.py): signed binaries, which one each warehouse runs, and how
# each agent's update went.
agent_releases = Table(
    "agent_releases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("signature", String(128), nullable=False),  # base64 Ed25519
    Column("size", BigInteger, nullable=False),
    Column("binary", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "version", name="uq_agent_releases_tenant_version"),
)

agent_release_assignments = Table(
    "agent_release_assignments",
    metadata,
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), primary_key=True, autoincrement=False),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
)

agent_update_reports = Table(
    "agent_update_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("agent_id", String(40), nullable=False),
    Column("version", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),  # installed, refused, rolled_back
    Column("message", Text, nullable=False, default=""),
    Column("reported_at", UtcDateTime, nullable=False),
    Index("ix_agent_update_reports_version", "tenant_id", "version", "id"),
    Index("ix_agent_update_reports_agent", "agent_id", "id"),
)

# The exception center: conflicts for a person to decide (cloud/orders/exceptions.py).
order_exceptions = Table(
    "order_exceptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    # NULL: a tenant-wide exception (an access alert), seen by tenant-wide callers only.
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=True),
    Column("order_ref", String(64), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # open, acknowledged, resolved
    Column("assignee", String(100), nullable=True),
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False, default="{}"),  # JSON object
    Column("event_id", String(64), nullable=True),  # the edge event that opened it
    Column("comment", Text, nullable=True),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime, nullable=True),
    Index("ix_order_exceptions_status", "tenant_id", "status", "id"),
)

# Every admin write: who, when, what, before and after (cloud/records/audit.py); kept at least 6 months.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(100), nullable=False),  # unique: token:<id>, user:<id>, cli:<os user>
    Column("actor_name", String(100), nullable=True),  # the actor's display name when it acted
    Column("role", String(20), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_kind", String(32), nullable=False),
    Column("object_key", String(200), nullable=False),
    Column("before", Text, nullable=True),  # JSON or NULL
    Column("after", Text, nullable=True),  # JSON or NULL
    # The warehouse the written object belongs to; NULL: tenant-wide (templates, rulesets, webhooks).
    Column("warehouse", String(32), nullable=True),
    Index("ix_audit_log_object", "tenant_id", "object_kind", "object_key", "id"),
    Index("ix_audit_log_actor", "tenant_id", "actor", "id"),
)

# People who sign in to the console (cloud/access/users.py): argon2 password hash and a TOTP secret.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("warehouses", Text, nullable=False, default=""),  # comma-separated codes; "" = whole tenant
    Column("password_hash", String(200), nullable=False),
    Column("totp_secret", Text, nullable=False),  # sealed (cloud/storage/sealed_secrets.py)
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
    # The last TOTP time step (Unix time // 30) a sign-in used: a code is never accepted twice.
    Column("totp_last_step", BigInteger, nullable=True),
)

# Console sessions: a bearer token (hashed) that acts for its user until it expires.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Failed console sign-ins (cloud/access/sign_in_limits.py), one row per account and per client address,
# keyed by a hash so unknown emails are not stored; every replica counts in the same rows.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Index("ix_sign_in_failures_window", "window_started_at"),
)

# Staged template rollout: the version a warehouse runs ahead of (or behind) the tenant's active one.
template_rollouts = Table(
    "template_rollouts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "name", "warehouse_id", name="uq_template_rollouts_name_warehouse"),
)

# Webhooks (cloud/webhooks/delivery.py): subscribers, the events they may hear of, and each delivery.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("url", String(2000), nullable=False),
    # The HMAC key, sealed (cloud/storage/sealed_secrets.py); the subscriber holds the same in clear.
    Column("secret", Text, nullable=False),
    Column("events", String(200), nullable=False),  # comma-separated event kinds
    Column("cursor", BigInteger, nullable=False, default=0),  # last webhook_events.id handed out
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),  # JSON object
    Index("ix_webhook_events_tenant", "tenant_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subscription_id", Id, ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("event_id", Id, ForeignKey("webhook_events.id"), nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    # The dispatcher (replica) sending it now, and until when its claim holds (cloud/webhooks/delivery.py).
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# Waves (cloud/orders/waves.py): a batch of orders released to one station, in print order.
waves = Table(
    "waves",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("station", String(32), nullable=False),
    Column("order_refs", Text, nullable=False),  # JSON list, in print order
    Column("created_by", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Addresses each actor (user:<id>, token:<id>) was seen at (cloud/access/alerts.py): a new one raises an
# alert, and a user's known addresses are not slowed down while their account is attacked.
known_addresses = Table(
    "known_addresses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("address", String(64), nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    UniqueConstraint("actor", "address", name="uq_known_addresses_actor_address"),
)

# Per-tenant alert thresholds (cloud/access/alerts.py); a kind without a row uses the default.
alert_thresholds = Table(
    "alert_thresholds",
    metadata,
    Column("tenant_id", Id, ForeignKey("tenants.id"), primary_key=True, autoincrement=False),
    Column("kind", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("window_s", Integer, nullable=False),
)

# Alerts raised (cloud/access/alerts.py): one per kind and subject within the kind's window.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("raised_at", UtcDateTime, nullable=False),
    Column("exception_id", Id, ForeignKey("order_exceptions.id"), nullable=True),
    Index("ix_alerts_subject", "tenant_id", "kind", "subject", "raised_at"),
)

# Shipping (cloud/shipping/): carrier accounts, their number ranges, the blocks leased to agents, every
# tracking number seen used or voided, the parcels of orders and the manifests that close them.
carriers = Table(
    "carriers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("tracking", Text, nullable=False),  # JSON: kind and its scheme, as synced (no secrets)
    Column("secret", Text, nullable=True),  # an api carrier's key, sealed (cloud/storage/sealed_secrets.py)
    Column("low_water", BigInteger, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_carriers_tenant_code"),
)

# Carrier-issued ranges of serials (the number before its check digit); never overlapping per carrier.
number_ranges = Table(
    "number_ranges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("next_free", BigInteger, nullable=False),  # the first serial not yet leased to an agent
    Column("format", Text, nullable=False),  # JSON NumberFormat (dockside/shipping/tracking.py)
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_number_ranges_carrier", "tenant_id", "carrier", "first"),
)

# A block of serials leased to one agent; used_through is the highest serial the cloud saw used from it.
number_leases = Table(
    "number_leases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("range_id", Id, ForeignKey("number_ranges.id"), nullable=True),  # NULL: an SSCC block
    Column("agent_id", String(40), nullable=False),
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("used_through", BigInteger, nullable=True),
    Column("retired", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_number_leases_agent", "tenant_id", "carrier", "agent_id"),
)

# Every tracking number seen used or voided: the unique key makes a number used twice visible.
tracking_numbers = Table(
    "tracking_numbers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("tracking_number", String(40), nullable=False),
    Column("state", String(16), nullable=False),  # used, voided
    Column("order_ref", String(64), nullable=True),
    Column("parcel", Integer, nullable=True),
    Column("agent_id", String(40), nullable=True),
    Column("lease_id", Id, nullable=True),
    Column("serial", BigInteger, nullable=True),
    Column("job_id", String(64), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("tenant_id", "carrier", "tracking_number", name="uq_tracking_numbers_number"),
)

# The parcels of orders, as the edge labelled them (cloud/orders/parcels.py) and manifests close them.
parcels = Table(
    "parcels",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("tracking_number", String(40), nullable=False, default=""),
    Column("carrier", String(32), nullable=False, default=""),
    Column("service", String(64), nullable=False, default=""),
    Column("weight_g", BigInteger, nullable=True),
    Column("dimensions_mm", Text, nullable=True),  # JSON [l, w, h] or NULL
    Column("documents", Text, nullable=False, default="[]"),  # JSON list of document kinds printed
    Column("state", String(16), nullable=False),  # labelled, voided, manifested, shipped
    Column("manifest_id", Id, ForeignKey("manifests.id"), nullable=True),
    Column("labelled_at", UtcDateTime, nullable=True),
    UniqueConstraint("tenant_id", "order_ref", "number", name="uq_parcels_order_number"),
    Index("ix_parcels_carrier_state", "tenant_id", "carrier", "state"),
    Index("ix_parcels_manifest", "manifest_id"),
)

# A carrier's parcels of one warehouse closed for its driver; handed_over_at once they left the dock.
manifests = Table(
    "manifests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("parcel_count", Integer, nullable=False),
    Column("total_weight_g", BigInteger, nullable=False),
    Column("created_by", String(100), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("handed_over_at", UtcDateTime, nullable=True),
    Index("ix_manifests_tenant", "tenant_id", "id"),
)

# The packers of a warehouse (cloud/fleet/packers.py): sign in at a station with a badge or a PIN.
packers = Table(
    "packers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", Id, ForeignKey("tenants.id"), nullable=False),
    Column("warehouse_id", Id, ForeignKey("warehouses.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("badge", String(64), nullable=True),  # the code on the badge; unique in the warehouse
    Column("pin_hash", Text, nullable=True),  # argon2 hash of the PIN, never the PIN
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("warehouse_id", "badge", name="uq_packers_warehouse_badge"),
)
