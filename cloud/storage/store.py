"""The one way into the cloud database: engine setup, transactions and the change log.

    store = CloudStore.open("sqlite:///dockside-cloud.db")
    with store.write() as tx:              # one transaction; revisions are taken inside it
        tx.conn.execute(...)
        tx.append_changes([ChangeRecord(...)])
    # after commit the notifier wakes the Watch streams

    with store.unit_of_work():             # an admin write and its audit entry: one transaction
        domain_write(store, ...)           # its store.write() joins the unit (a savepoint)
        audit.record(store, ...)           # so does this one; both commit, or neither

On SQLite every write transaction is BEGIN IMMEDIATE, so two writers never deadlock on a lock
upgrade; on PostgreSQL the clock row's lock does the same job for synced writes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from cloud.storage import migrations, schema
from cloud.storage.notifier import AgentRevocations, LocalRevisionNotifier, RevisionNotifier
from cloud.storage.pg_notifier import PostgresRevisionNotifier, channels_for_schema
from dockside.secret_files import SQLITE_COMPANIONS, private_file
from dockside.sqlite_wal import enter_wal

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ChangeRecord",
    "CloudStore",
    "WriteTransaction",
    "database_url_from_env",
    "dumps",
    "utcnow",
]

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///dockside-cloud.db"
_WRITE_OPTION = "dockside_write"
_SQLITE_BUSY_TIMEOUT_MS = 10_000


def utcnow() -> datetime:
    """The current time in UTC (the only clock the cloud stores)."""
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    """Compact JSON, the form every stored document and sync body uses."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def database_url_from_env() -> str:
    """`$DOCKSIDE_DATABASE_URL`, else the SQLite file in the working directory."""
    return os.environ.get("DOCKSIDE_DATABASE_URL") or DEFAULT_DATABASE_URL


def _engine_url(url: str) -> str:
    # Plain postgresql:// URLs would pick psycopg2; Dockside ships psycopg 3.
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One entry for the change log: an entity's whole new state (or its deletion)."""

    tenant_id: int
    warehouse_id: int | None  # None: every warehouse of the tenant sees it
    kind: str
    key: str
    body: str = ""
    deleted: bool = False


@dataclass(slots=True)
class WriteTransaction:
    """An open write transaction; changes appended here commit with the write or not at all."""

    conn: Connection
    dialect: str
    now: datetime
    last_revision: int = 0
    _clock_locked: bool = field(default=False)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the outermost transaction has committed (never on rollback)."""
        self._after_commit.append(callback)

    def lock_clock(self) -> int:
        """Take the clock row's lock now and return the current revision.

        A write that reads before it decides what to change (bulk ingest) calls this first, so
        no other synced write can commit between its reads and its writes.
        """
        query = select(schema.sync_clock.c.revision).where(schema.sync_clock.c.id == 1)
        if self.dialect != "sqlite":  # SQLite's BEGIN IMMEDIATE already holds the write lock
            query = query.with_for_update()
        self._clock_locked = True
        return int(self.conn.execute(query).scalar_one())

    def append_changes(self, records: Sequence[ChangeRecord]) -> list[int]:
        """Append records to the change log with a block of fresh revisions; returns them."""
        if not records:
            return []
        clock = schema.sync_clock
        top = self.conn.execute(
            update(clock)
            .where(clock.c.id == 1)
            .values(revision=clock.c.revision + len(records))
            .returning(clock.c.revision)
        ).scalar_one()
        first = int(top) - len(records) + 1
        revisions = list(range(first, int(top) + 1))
        schema.insert_rows(
            self.conn,
            schema.changes,
            [
                {
                    "revision": revision,
                    "tenant_id": record.tenant_id,
                    "warehouse_id": record.warehouse_id,
                    "kind": record.kind,
                    "key": record.key,
                    "deleted": record.deleted,
                    "body": "" if record.deleted else record.body,
                    "recorded_at": self.now,
                }
                for revision, record in zip(revisions, records, strict=True)
            ],
        )
        self.last_revision = int(top)
        return revisions


class CloudStore:
    """The database plus the notifier that tells Watch streams about new revisions."""

    def __init__(self, engine: Engine, notifier: RevisionNotifier | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.notifier: RevisionNotifier = notifier if notifier is not None else LocalRevisionNotifier()
        self.revocations = AgentRevocations()
        # Set by cloud.storage.pg_notifier: the NOTIFY channel other replicas listen on for revocations.
        self.revocation_channel: str | None = None

    @classmethod
    def open(cls, url: str, *, create: bool = True, listen: bool = True) -> CloudStore:
        """Connect to `url` (sqlite:///path or postgresql://...) and, by default, migrate the schema.

        On PostgreSQL `listen` starts the LISTEN/NOTIFY notifier (cloud.storage.pg_notifier) so Watch
        streams wake for writes made through other replicas.
        """
        engine_url = _engine_url(url)
        if engine_url.startswith("sqlite"):
            _private_database_file(engine_url)
            engine = create_engine(
                engine_url,
                connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000},
                pool_size=16,
                max_overflow=32,
            )
            _configure_sqlite(engine)
        else:
            engine = create_engine(engine_url, pool_size=16, max_overflow=32, pool_pre_ping=True)
        store = cls(engine)
        if create:
            store.create_schema()
        revision = store.current_revision()
        if store.dialect == "postgresql" and listen:
            store._listen_to_replicas(revision)
        store.notifier.advanced(revision)
        return store

    def _listen_to_replicas(self, revision: int) -> None:
        """Swap in the LISTEN/NOTIFY notifier so replicas sharing this database wake each other."""
        with self.read() as conn:
            schema_name = str(conn.execute(text("SELECT current_schema()")).scalar_one())
        channels = channels_for_schema(schema_name)
        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        notifier = PostgresRevisionNotifier(dsn, channels, self.revocations, revision=revision)
        notifier.start()
        self.notifier = notifier
        self.revocation_channel = channels.revoked

    def announce_revocation(self, tx: WriteTransaction, agent_id: str) -> None:
        """Tell other replicas, when this commits, that `agent_id` is revoked (PostgreSQL NOTIFY)."""
        if self.revocation_channel is not None:
            tx.conn.execute(
                text("SELECT pg_notify(:channel, :agent)"),
                {"channel": self.revocation_channel, "agent": agent_id},
            )

    def close(self) -> None:
        """Wake every watcher for good and release the connections."""
        self.notifier.close()
        self.engine.dispose()

    def create_schema(self) -> None:
        """Migrate to the newest schema, add the default tenant and the clock row; safe to run again.

        One transaction: a failed migration leaves the database as it was.
        """
        with self.write() as tx:
            if self.dialect == "postgresql":
                # Two replicas starting at once must not both migrate.
                tx.conn.execute(text("SELECT pg_advisory_xact_lock(7263001)"))
            migrations.upgrade(tx.conn)
            self._create_unmigrated_tables(tx.conn)
            if tx.conn.execute(select(schema.sync_clock.c.id)).first() is None:
                tx.conn.execute(insert(schema.sync_clock).values(id=1, revision=0, horizon=0))
            tenant = schema.tenants
            if (
                tx.conn.execute(select(tenant.c.id).where(tenant.c.code == schema.DEFAULT_TENANT)).first()
                is None
            ):
                tx.conn.execute(
                    insert(tenant).values(
                        code=schema.DEFAULT_TENANT, name="Default tenant", created_at=tx.now
                    )
                )

    @staticmethod
    def _create_unmigrated_tables(conn: Connection) -> None:
        # A table in schema.py without a migration yet still works in development, loudly;
        # tests/cloud/storage/test_migrations.py fails until the migration is written.
        present = set(inspect(conn).get_table_names())
        missing = [table for table in schema.metadata.sorted_tables if table.name not in present]
        if missing:
            log.warning(
                "tables without a migration: %s: add one under cloud/storage/migrations/versions",
                ", ".join(table.name for table in missing),
            )
            schema.metadata.create_all(conn, tables=missing)

    @contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        """A write transaction; on success it commits, then wakes watchers of new revisions.

        Inside `unit_of_work()` it joins the unit's transaction as a savepoint instead: an error
        in it undoes only its own statements, and nothing commits before the unit does.
        """
        unit = _UNIT.get()
        if unit is not None and unit.store is self:
            tx = unit.transaction()
            with tx.conn.begin_nested():
                yield tx
            return
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                tx = WriteTransaction(conn=conn, dialect=self.dialect, now=utcnow())
                yield tx
        self._committed(tx)

    def _committed(self, tx: WriteTransaction) -> None:
        if tx.last_revision:
            self.notifier.advanced(tx.last_revision)
        for callback in tx._after_commit:
            callback()

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One transaction for every `write()` (and, once one began, `read()`) made inside it.

        The transaction begins at the first write, so validation and reads before it hold no
        write lock; it commits when the block ends and rolls back if the block raises. Nested
        units join the outer one. The unit belongs to this store and this thread's context.
        """
        outer = _UNIT.get()
        if outer is not None and outer.store is self:
            yield
            return
        unit = _UnitOfWork(self)
        token = _UNIT.set(unit)
        try:
            yield
        except BaseException:
            unit.rollback()
            raise
        else:
            unit.commit()
        finally:
            _UNIT.reset(token)

    @contextmanager
    def read(self, *, consistent: bool = False) -> Iterator[Connection]:
        """A read-only transaction; `consistent` gives one snapshot for all its statements.

        Inside a unit of work that has begun writing, it reads on the unit's connection, so it
        sees the unit's own uncommitted writes.
        """
        unit = _UNIT.get()
        if unit is not None and unit.store is self and unit.tx is not None:
            yield unit.tx.conn
            return
        with self.engine.connect() as conn:
            if consistent and self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            # A SQLite read transaction sees one snapshot from its first statement on.
            with conn.begin():
                yield conn

    def current_revision(self) -> int:
        """The last revision handed out."""
        with self.read() as conn:
            return int(conn.execute(select(schema.sync_clock.c.revision)).scalar_one())

    def clock(self) -> tuple[int, int]:
        """(current revision, compaction horizon)."""
        with self.read() as conn:
            row = conn.execute(select(schema.sync_clock.c.revision, schema.sync_clock.c.horizon)).one()
            return int(row.revision), int(row.horizon)

    def tenant_id(self, code: str = schema.DEFAULT_TENANT) -> int:
        """The id of a tenant by its code."""
        with self.read() as conn:
            return int(
                conn.execute(select(schema.tenants.c.id).where(schema.tenants.c.code == code)).scalar_one()
            )


class _UnitOfWork:
    """The transaction a `CloudStore.unit_of_work()` block shares, opened at its first write."""

    def __init__(self, store: CloudStore) -> None:
        self.store = store
        self.tx: WriteTransaction | None = None
        self._conn: Connection | None = None

    def transaction(self) -> WriteTransaction:
        if self.tx is None:
            conn = self.store.engine.connect()
            try:
                conn.execution_options(**{_WRITE_OPTION: True})
                conn.begin()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.tx = WriteTransaction(conn=conn, dialect=self.store.dialect, now=utcnow())
        return self.tx

    def commit(self) -> None:
        if self._conn is None or self.tx is None:
            return
        try:
            self._conn.commit()
        finally:
            self._conn.close()
        self.store._committed(self.tx)

    def rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            finally:
                self._conn.close()


# The unit of work open in this context (a request runs in one thread, so one per request).
_UNIT: ContextVar[_UnitOfWork | None] = ContextVar("dockside_unit_of_work", default=None)


def _private_database_file(engine_url: str) -> None:
    """Create the SQLite file 0600 before SQLite does (0644): it holds token hashes and secrets."""
    database = make_url(engine_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    private_file(Path(database), companions=SQLITE_COMPANIONS)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and transactions Dockside begins itself."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's begin() below decide when a transaction starts, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        enter_wal(cursor, _SQLITE_BUSY_TIMEOUT_MS / 1000)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes can fail with SQLITE_BUSY when another writer committed in between.
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
