"""The edge store's schema, as an ordered registry of migrations.

Each migration is a function registered with `@MIGRATIONS.register`; the store applies the ones
it has not recorded yet, each in the same transaction as its record in `_migrations`, so a crash
can never leave a half-applied step. A migration is never edited once released: a schema change
is a new function at the end of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MIGRATIONS",
    "Migration",
    "MigrationRegistry",
    "m0001_foundation",
    "m0002_held_jobs",
    "m0003_waves",
    "m0004_shipments",
    "m0005_void_restore_dock",
    "m0006_packers",
    "m0007_orders_closed",
    "m0008_sent_jobs",
    "m0009_item_checks",
]

MigrationFunction = Callable[[Any], None]  # takes the sqlite_utils.Database


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its stable name (recorded in the store) and what it does."""

    name: str
    apply: MigrationFunction


class MigrationRegistry:
    """The ordered list of schema steps; registering the same name twice is a bug."""

    def __init__(self) -> None:
        self._steps: list[Migration] = []

    def register(self, function: MigrationFunction) -> MigrationFunction:
        """Decorator: add `function` as the next step, named after the function."""
        name = function.__name__
        if any(step.name == name for step in self._steps):
            raise ValueError(f"migration {name!r} is registered twice")
        self._steps.append(Migration(name, function))
        return function

    def __iter__(self) -> Iterator[Migration]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def names(self) -> list[str]:
        return [step.name for step in self._steps]


MIGRATIONS = MigrationRegistry()


@MIGRATIONS.register
def m0001_foundation(db: Any) -> None:
    """Identity, the synced cache, jobs, the outbox and its dead letters."""
    statements = [
        # One row: who this agent is. The credential is a secret: never logged.
        """CREATE TABLE identity (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            agent_id TEXT NOT NULL,
            credential TEXT NOT NULL,
            warehouse TEXT NOT NULL,
            tenant TEXT NOT NULL DEFAULT '',
            cloud TEXT NOT NULL,
            enrolled_at_ms INTEGER NOT NULL
        )""",
        # One row: the last cloud revision whose change is applied to the cache.
        """CREATE TABLE sync_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            revision INTEGER NOT NULL DEFAULT 0
        )""",
        "INSERT INTO sync_state (id, revision) VALUES (1, 0)",
        # The synced cache: each row is an entity's whole body at the revision that wrote it.
        """CREATE TABLE warehouses (
            code TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        """CREATE TABLE stations (
            code TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        """CREATE TABLE template_versions (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            active INTEGER NOT NULL DEFAULT 0,
            body TEXT NOT NULL,
            compile_error TEXT,
            revision INTEGER NOT NULL
        )""",
        "CREATE INDEX template_versions_by_name ON template_versions (name, active)",
        """CREATE TABLE rulesets (
            name TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        """CREATE TABLE orders (
            order_ref TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT '',
            revision INTEGER NOT NULL
        )""",
        # A snapshot lands here first and replaces the cache in one transaction at its end.
        """CREATE TABLE snapshot_staging (
            kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, revision INTEGER NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
        # Print jobs: recorded `sending` before the bytes go out (at-most-once printing).
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            request_id TEXT UNIQUE,
            order_ref TEXT NOT NULL,
            station TEXT NOT NULL,
            printer TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('sending', 'printed', 'failed', 'unknown')),
            label BLOB NOT NULL,
            weight_g INTEGER,
            decision TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            reprint_of TEXT REFERENCES jobs (job_id),
            reason TEXT NOT NULL DEFAULT ''
        )""",
        # No index on status: only startup looks jobs up by it, and every index is a page
        # written by each commit of the pack path.
        "CREATE INDEX jobs_by_order ON jobs (order_ref, created_at_ms)",
        # Facts for the cloud, written in the same transaction as their local effect.
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            order_ref TEXT NOT NULL DEFAULT '',
            station TEXT NOT NULL DEFAULT '',
            occurred_at_ms INTEGER NOT NULL,
            body TEXT NOT NULL
        )""",
        # Events the cloud refused for good: kept for a person, never resent on their own.
        """CREATE TABLE dead_letters (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            order_ref TEXT NOT NULL DEFAULT '',
            station TEXT NOT NULL DEFAULT '',
            occurred_at_ms INTEGER NOT NULL,
            body TEXT NOT NULL,
            code TEXT NOT NULL,
            message TEXT NOT NULL,
            dead_at_ms INTEGER NOT NULL
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0002_held_jobs(db: Any) -> None:
    """Jobs may be `held` (waiting for their printer, no byte sent) and carry a message for the packer."""
    # SQLite cannot change a CHECK constraint in place: move the old table aside (its self
    # reference moves with it), create the new one, copy, drop the old, all in one transaction.
    statements = [
        "ALTER TABLE jobs RENAME TO jobs_before_held",
        "DROP INDEX jobs_by_order",
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            request_id TEXT UNIQUE,
            order_ref TEXT NOT NULL,
            station TEXT NOT NULL,
            printer TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('held', 'sending', 'printed', 'failed', 'unknown')),
            label BLOB NOT NULL,
            weight_g INTEGER,
            decision TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            reprint_of TEXT REFERENCES jobs (job_id),
            reason TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT ''
        )""",
        """INSERT INTO jobs (job_id, request_id, order_ref, station, printer, status, label,
            weight_g, decision, created_at_ms, updated_at_ms, reprint_of, reason)
           SELECT job_id, request_id, order_ref, station, printer, status, label,
            weight_g, decision, created_at_ms, updated_at_ms, reprint_of, reason
           FROM jobs_before_held ORDER BY rowid""",
        "DROP TABLE jobs_before_held",
        "CREATE INDEX jobs_by_order ON jobs (order_ref, created_at_ms)",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0003_waves(db: Any) -> None:
    """Waves synced from the cloud (a station's orders in print order) and the wave prints asked for."""
    statements = [
        # The synced wave entities; a snapshot replaces them like the rest of the cache.
        """CREATE TABLE waves (
            wave_id INTEGER PRIMARY KEY,
            station TEXT NOT NULL,
            body TEXT NOT NULL,
            revision INTEGER NOT NULL
        )""",
        "CREATE INDEX waves_by_station ON waves (station, wave_id)",
        # One row per "Print wave" request id (local facts, never replaced by a snapshot): a
        # retried request finds its run here and prints nothing more.
        """CREATE TABLE wave_prints (
            request_id TEXT PRIMARY KEY,
            wave_id INTEGER NOT NULL,
            station TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            finished_at_ms INTEGER,
            report TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX wave_prints_by_wave ON wave_prints (wave_id, started_at_ms)",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0004_shipments(db: Any) -> None:
    """Parcels and tracking numbers: a job is one document of one parcel, with its tracking number;
    the synced carrier accounts and number leases; the numbers this agent took (local facts)."""
    statements = [
        "ALTER TABLE jobs ADD COLUMN parcel INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN document TEXT NOT NULL DEFAULT 'shipping_label'",
        "ALTER TABLE jobs ADD COLUMN tracking_number TEXT NOT NULL DEFAULT ''",
        # At most once per (order, parcel, document): the pack path looks its first job up here.
        # It replaces the index by order (same leading column): every index is a page written
        # by each commit of the pack path.
        "DROP INDEX jobs_by_order",
        "CREATE INDEX jobs_by_parcel ON jobs (order_ref, parcel, document, created_at_ms)",
        # Synced carrier accounts (no secrets) and this warehouse's number leases; a snapshot
        # replaces them like the rest of the cache.
        """CREATE TABLE carriers (
            code TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        """CREATE TABLE number_leases (
            id INTEGER PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        # Every leased number this agent ever took, written in the transaction of the job that
        # took it (local facts, never replaced by a snapshot): a serial is taken once, for good.
        """CREATE TABLE numbers_taken (
            lease_id INTEGER NOT NULL,
            serial INTEGER NOT NULL,
            carrier TEXT NOT NULL,
            tracking_number TEXT NOT NULL,
            job_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('used', 'voided')),
            at_ms INTEGER NOT NULL,
            UNIQUE (lease_id, serial)
        )""",
        "CREATE INDEX numbers_taken_by_job ON numbers_taken (job_id)",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0005_void_restore_dock(db: Any) -> None:
    """Local facts of issue 15's wave 2: leases retired here (after a restore), voided parcels
    (a job status), and parcels handed over at a dock station. Never replaced by a snapshot."""
    statements = [
        # A restored database retires every lease it held: Numbers never takes from them again,
        # whatever the cloud still says of them until it hears `lease_retired`.
        """CREATE TABLE leases_retired (
            lease_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, at_ms INTEGER NOT NULL
        )""",
        # A voided parcel's label job keeps its row (history) with status 'voided'.
        "ALTER TABLE jobs RENAME TO jobs_m0004",
        "DROP INDEX jobs_by_parcel",
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            request_id TEXT UNIQUE,
            order_ref TEXT NOT NULL,
            station TEXT NOT NULL,
            printer TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('held', 'sending', 'printed', 'failed', 'unknown', 'voided')),
            label BLOB NOT NULL,
            weight_g INTEGER,
            decision TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            reprint_of TEXT REFERENCES jobs (job_id),
            reason TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            parcel INTEGER NOT NULL DEFAULT 1,
            document TEXT NOT NULL DEFAULT 'shipping_label',
            tracking_number TEXT NOT NULL DEFAULT ''
        )""",
        """INSERT INTO jobs (job_id, request_id, order_ref, station, printer, status, label, weight_g,
            decision, created_at_ms, updated_at_ms, reprint_of, reason, message, parcel, document,
            tracking_number)
           SELECT job_id, request_id, order_ref, station, printer, status, label, weight_g,
            decision, created_at_ms, updated_at_ms, reprint_of, reason, message, parcel, document,
            tracking_number
           FROM jobs_m0004 ORDER BY rowid""",
        "DROP TABLE jobs_m0004",
        "CREATE INDEX jobs_by_parcel ON jobs (order_ref, parcel, document, created_at_ms)",
        # A dock scan finds its parcel by the number on the label.
        "CREATE INDEX jobs_by_tracking ON jobs (tracking_number) WHERE tracking_number <> ''",
        """CREATE TABLE handovers (
            order_ref TEXT NOT NULL,
            parcel INTEGER NOT NULL,
            tracking_number TEXT NOT NULL,
            carrier TEXT NOT NULL,
            station TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            request_id TEXT UNIQUE,
            PRIMARY KEY (order_ref, parcel, tracking_number)
        )""",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0006_packers(db: Any) -> None:
    """Issue 16's packers: the warehouse's packers as the cloud sent them (synced cache), who is
    signed in at each station (local, kept across restarts, never replaced by a snapshot), and
    the packer of every job."""
    statements = [
        """CREATE TABLE packers (
            id TEXT PRIMARY KEY, body TEXT NOT NULL, revision INTEGER NOT NULL
        )""",
        """CREATE TABLE station_packers (
            station TEXT PRIMARY KEY, packer INTEGER NOT NULL, signed_in_at_ms INTEGER NOT NULL
        )""",
        "ALTER TABLE jobs ADD COLUMN packer INTEGER",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0007_orders_closed(db: Any) -> None:
    """Issue 15/16's close kept at the agent: an order the packer closed (with how many parcels,
    why, when), written in the transaction of its `order_closed` event, so no later pack labels
    a further parcel of it."""
    db.execute(
        """CREATE TABLE orders_closed (
            order_ref TEXT PRIMARY KEY, parcels INTEGER NOT NULL, reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        )"""
    )


@MIGRATIONS.register
def m0008_sent_jobs(db: Any) -> None:
    """Issue 16's confirmed printing: a job is `sent` when its bytes went out and `printed` only
    when the printer confirms it; `sent_at_ms` marks a job whose bytes went out (a job held in
    the printer's own buffer after a fault is never sent again). Jobs printed before this step
    keep `printed` (their printer took them, as that word meant then)."""
    statements = [
        "ALTER TABLE jobs RENAME TO jobs_m0007",
        "DROP INDEX jobs_by_parcel",
        "DROP INDEX jobs_by_tracking",
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            request_id TEXT UNIQUE,
            order_ref TEXT NOT NULL,
            station TEXT NOT NULL,
            printer TEXT NOT NULL,
            status TEXT NOT NULL CHECK (
                status IN ('held', 'sending', 'sent', 'printed', 'failed', 'unknown', 'voided')
            ),
            label BLOB NOT NULL,
            weight_g INTEGER,
            decision TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            reprint_of TEXT REFERENCES jobs (job_id),
            reason TEXT NOT NULL DEFAULT '',
            message TEXT NOT NULL DEFAULT '',
            parcel INTEGER NOT NULL DEFAULT 1,
            document TEXT NOT NULL DEFAULT 'shipping_label',
            tracking_number TEXT NOT NULL DEFAULT '',
            packer INTEGER,
            sent_at_ms INTEGER
        )""",
        """INSERT INTO jobs (job_id, request_id, order_ref, station, printer, status, label, weight_g,
            decision, created_at_ms, updated_at_ms, reprint_of, reason, message, parcel, document,
            tracking_number, packer, sent_at_ms)
           SELECT job_id, request_id, order_ref, station, printer, status, label, weight_g,
            decision, created_at_ms, updated_at_ms, reprint_of, reason, message, parcel, document,
            tracking_number, packer,
            CASE WHEN status IN ('printed', 'failed', 'unknown', 'voided') THEN updated_at_ms END
           FROM jobs_m0007 ORDER BY rowid""",
        "DROP TABLE jobs_m0007",
        "CREATE INDEX jobs_by_parcel ON jobs (order_ref, parcel, document, created_at_ms)",
        "CREATE INDEX jobs_by_tracking ON jobs (tracking_number) WHERE tracking_number <> ''",
    ]
    for statement in statements:
        db.execute(statement)


@MIGRATIONS.register
def m0009_item_checks(db: Any) -> None:
    """Issue 16's item check: per order, the units scanned of each line (a JSON list, as long as
    the order's lines), what lines they count (`lines_key`: a change in the cloud starts over),
    the station last at it, and when it was begun, touched and completed; local, kept across a
    reload of the page and a restart of the agent."""
    statements = [
        """CREATE TABLE item_checks (
            order_ref TEXT PRIMARY KEY,
            station TEXT NOT NULL,
            lines_key TEXT NOT NULL,
            scanned TEXT NOT NULL,
            started_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            completed_at_ms INTEGER
        )""",
        "CREATE INDEX item_checks_by_station ON item_checks (station, updated_at_ms)",
        "CREATE INDEX item_checks_by_age ON item_checks (updated_at_ms)",
    ]
    for statement in statements:
        db.execute(statement)
