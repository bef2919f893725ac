"""The synced cache: this warehouse's stations, templates, rulesets, orders, waves, carrier accounts,
number leases and packers, as the cloud sent them.

The watch loop calls `apply()` inside the transaction that also stores the change's revision, so
data and revision never disagree. A snapshot is staged in `snapshot_staging` and swapped in with
one transaction at its end. Small entities (warehouses, stations, rulesets, compiled templates,
carriers, number leases) are also held in memory for the pack path; those views change only
after the transaction that changed the tables has committed (`after_commit()`), so memory never
shows a write that a crash would undo.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from dockside.errors import Conflict, DocksideError, SyncError
from dockside.http_errors import describe_field_errors
from dockside.orders import SyncedOrder
from dockside.shipping.sscc import max_serial
from dockside.shipping.tracking import NumberFormat
from dockside.sync import ChangeKind, SyncChange
from edge_agent.store.database import Store
from edge_agent.store.templates import TemplateShelf, compile_version

__all__ = ["Cache", "UnusableChange", "WarehouseSettings"]

log = logging.getLogger(__name__)

# Entity kind -> (table, key column) for the plain "key, body, revision" tables.
_PLAIN_TABLES = {
    ChangeKind.WAREHOUSE: ("warehouses", "code"),
    ChangeKind.STATION: ("stations", "code"),
    ChangeKind.RULESET: ("rulesets", "name"),
    ChangeKind.CARRIER: ("carriers", "code"),
    ChangeKind.PACKER: ("packers", "id"),
}
_KEY_COLUMNS = {**dict(_PLAIN_TABLES.values()), "number_leases": "id"}
_CACHE_TABLES = (
    "warehouses",
    "stations",
    "rulesets",
    "orders",
    "template_versions",
    "waves",
    "carriers",
    "number_leases",
    "packers",
)
_LEASE_KINDS = ("range", "sscc")
_WAVE_KEY = re.compile(r"^[1-9][0-9]{0,17}$")
_MAX_CODE_CHARS = 32
_MAX_REF_CHARS = 64
_MAX_PIN_HASH_CHARS = 512
_STAGE_FLUSH_EVERY = 1000
# A staged order that can be cached: a key, and a body that is a JSON object.
_USABLE_ORDER = "(key != '' AND CASE WHEN json_valid(body) THEN json_type(body) = 'object' ELSE 0 END)"

StationsListener = Callable[[Mapping[str, Mapping[str, Any]]], None]

# An order one of whose parcels carries the OMS's label as a picture (PDF or PNG): printing it
# needs the carrier labels' worker process, which takes a second or more to start.
_IMAGE_LABEL_FORMATS = ("pdf", "png")
_HOLDS_IMAGE_LABEL = (  # CASE, not AND: SQLite may test the conditions in any order
    "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_type(orders.body, '$.parcels') = 'array' "
    "THEN json_extract(orders.body, '$.parcels') ELSE '[]' END) AS parcel "
    "WHERE CASE WHEN parcel.type = 'object' "
    "THEN json_extract(parcel.value, '$.label.format') END IN ('pdf', 'png'))"
)


def _holds_image_label(body: Mapping[str, Any]) -> bool:
    """Whether a synced order body has a parcel with a PDF or PNG label (read leniently)."""
    parcels = body.get("parcels")
    if not isinstance(parcels, list):
        return False
    for parcel in parcels:
        label = parcel.get("label") if isinstance(parcel, Mapping) else None
        if isinstance(label, Mapping) and label.get("format") in _IMAGE_LABEL_FORMATS:
            return True
    return False


class UnusableChange(ValueError):
    """A change whose body or key the agent cannot use (the cloud's bug, not the agent's)."""


@dataclass(frozen=True)
class WarehouseSettings:
    """What the warehouse's stations follow, from its synced body (cloud/fleet/warehouses.py).

    `weight_unit` is the unit the station page shows weights in ("kg" or "lb"; the agent weighs
    in grams either way); `item_check` says whether packers scan each order line's items before
    weighing. A body from before the settings, or with a value the cloud would never send, reads
    as the defaults (kg, no item check): a station keeps packing rather than guessing.
    """

    weight_unit: Literal["kg", "lb"] = "kg"
    item_check: bool = False

    @classmethod
    def of_body(cls, body: Mapping[str, Any] | None) -> WarehouseSettings:
        body = body or {}
        unit = body.get("weight_unit")
        return cls(weight_unit="lb" if unit == "lb" else "kg", item_check=body.get("item_check") is True)

    def to_json(self) -> dict[str, Any]:
        return {"weight_unit": self.weight_unit, "item_check": self.item_check}


class Cache:
    """Reads and writes of the synced cache, plus its in-memory views."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.templates = TemplateShelf()
        self.warehouses: dict[str, dict[str, Any]] = {}
        self.stations: dict[str, dict[str, Any]] = {}
        self.rulesets: dict[str, dict[str, Any]] = {}
        self.carriers: dict[str, dict[str, Any]] = {}
        self.number_leases: dict[int, dict[str, Any]] = {}
        self.packers: dict[str, dict[str, Any]] = {}  # by id in decimal (the change's key)
        self._stations_listeners: list[StationsListener] = []
        self._image_label_listeners: list[Callable[[], None]] = []
        self._lease_listeners: list[Callable[[], None]] = []
        self._image_label_seen = False  # an order written in this transaction has a PDF/PNG label
        # Effects on the in-memory views, waiting for the current transaction to commit.
        self._reload: set[str] = set()
        self._shelf_ops: list[Callable[[], None]] = []
        self._staged: list[tuple[str, str, str, int]] = []
        self._snapshot_refused = 0
        self.snapshot_open = False

    def on_stations_changed(self, listener: StationsListener) -> None:
        self._stations_listeners.append(listener)

    def on_image_label(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a commit that wrote an order with a PDF or PNG carrier label, and
        after `load` or a snapshot when the cache holds one (to warm the label worker)."""
        self._image_label_listeners.append(listener)

    def on_number_leases_changed(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a commit that changed the number leases (a new block, a top-up, a
        retirement), and after `load` or a snapshot (to release labels awaiting a number)."""
        self._lease_listeners.append(listener)

    def holds_image_label(self) -> bool:
        """Whether any cached order has a parcel whose OMS label is a PDF or PNG."""
        row = self._store.conn.execute(
            f"SELECT 1 FROM orders WHERE CASE WHEN json_valid(body) THEN {_HOLDS_IMAGE_LABEL} END LIMIT 1"  # noqa: S608
        ).fetchone()
        return row is not None

    # -- reads -------------------------------------------------------------------------------

    def load(self) -> None:
        """Build the in-memory views from the tables (at startup)."""
        self._reload = set(_KEY_COLUMNS)
        self._shelf_ops = [self._load_shelf]
        self._image_label_seen = self.holds_image_label()
        self.after_commit()

    def order(self, order_ref: str) -> SyncedOrder | None:
        """The order as synced, parsed once per read; its state is the one the cache keeps.

        The cache stores what the cloud sent without parsing it (a snapshot moves its orders in
        one SQL statement), so an order the cloud sent broken is refused here, naming it.
        """
        row = self._store.conn.execute(
            "SELECT body, state FROM orders WHERE order_ref = ?", (order_ref,)
        ).fetchone()
        if row is None:
            return None
        try:
            return SyncedOrder.from_sync_body(json.loads(row[0]), state=row[1])
        except ValidationError as exc:
            fix = "correct the order in the cloud, then scan again"
            problems = describe_field_errors(exc.errors(), fix=fix, whole="the order")
            raise Conflict(
                f"order {order_ref} as synced from the cloud is not a usable order: {problems}",
                code="order_unusable",
            ) from None

    def ruleset(self) -> dict[str, Any] | None:
        """The ruleset the pack path decides with: the one named "default", never another.

        None when the cloud has published no ruleset at all (the built-in default decision
        applies). Rulesets held but none named "default" is refused: another ruleset (a draft, a
        test, another purpose) was never chosen to decide how parcels ship.
        """
        held = self.rulesets.get("default")
        if held is not None:
            return held
        if self.rulesets:
            names = ", ".join(sorted(repr(name) for name in self.rulesets)[:5])
            raise SyncError(
                f"this warehouse has rulesets ({names}) but none named 'default', the one packing "
                "decides with: publish a ruleset named 'default' in the cloud console, then scan again",
                code="no_default_ruleset",
            )
        return None

    def ship_from(self, warehouse: str) -> dict[str, Any]:
        body = self.warehouses.get(warehouse) or {}
        ship_from = body.get("ship_from")
        return dict(ship_from) if isinstance(ship_from, Mapping) else {}

    def warehouse_settings(self, warehouse: str) -> WarehouseSettings:
        """The synced settings of `warehouse` (the defaults until its body has arrived)."""
        return WarehouseSettings.of_body(self.warehouses.get(warehouse))

    def template_versions(self) -> list[dict[str, Any]]:
        return self._store.query(
            "SELECT key, name, version, active, compile_error, revision FROM template_versions ORDER BY key"
        )

    # -- writes (inside the caller's transaction) --------------------------------------------

    def apply(self, change: SyncChange) -> None:
        """Write one change; raises UnusableChange (writing nothing) if its body is not usable."""
        self._write(change.kind, change.key, None if change.deleted else change.body, change.revision)

    def _write(self, kind: str, key: str, raw: bytes | None, revision: int) -> None:
        conn = self._store.conn
        if not key:
            raise UnusableChange(f"a {kind} change without a key")
        body = None if raw is None else _json_object(raw, kind, key)
        text = None if body is None else json.dumps(body, separators=(",", ":"))
        if kind == ChangeKind.PACKER and body is not None:
            problem = _packer_problem(key, body)
            if problem:
                raise UnusableChange(f"packer {key[:20]}: {problem}")
        if kind in _PLAIN_TABLES:
            table, column = _PLAIN_TABLES[ChangeKind(kind)]
            if text is None:
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))  # noqa: S608
            else:
                conn.execute(
                    f"INSERT INTO {table} ({column}, body, revision) VALUES (?, ?, ?) "  # noqa: S608
                    f"ON CONFLICT ({column}) DO UPDATE SET "
                    "body = excluded.body, revision = excluded.revision",
                    (key, text, revision),
                )
            self._reload.add(table)
        elif kind == ChangeKind.ORDER:
            if text is None:
                conn.execute("DELETE FROM orders WHERE order_ref = ?", (key,))
            else:
                assert body is not None
                self._image_label_seen = self._image_label_seen or _holds_image_label(body)
                state = body.get("state", "")
                conn.execute(
                    "INSERT INTO orders (order_ref, body, state, revision) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (order_ref) DO UPDATE SET body = excluded.body, state = excluded.state, "
                    "revision = excluded.revision",
                    (key, text, state if isinstance(state, str) else "", revision),
                )
        elif kind == ChangeKind.TEMPLATE_VERSION:
            self._write_template_version(key, body, text, revision)
        elif kind == ChangeKind.WAVE:
            self._write_wave(key, body, text, revision)
        elif kind == ChangeKind.NUMBER_LEASE:
            self._write_lease(key, body, text, revision)
        else:
            raise UnusableChange(f"unknown change kind {kind!r} (a newer cloud?)")

    def _write_template_version(
        self, key: str, body: dict[str, Any] | None, text: str | None, revision: int
    ) -> None:
        conn = self._store.conn
        name, _, version_text = key.rpartition("@")
        if not name or not version_text.isdigit():
            raise UnusableChange(f"template version key {key!r} is not name@version")
        version = int(version_text)
        if body is None or text is None:
            conn.execute("DELETE FROM template_versions WHERE key = ?", (key,))
            self._shelf_ops.append(lambda: self.templates.remove(name, version))
            return
        shelved = compile_version(name, version, body)
        if shelved.error:
            log.warning("template %s does not compile here and will not be used: %s", key, shelved.error)
        active = bool(body.get("active"))
        if active:
            # Publishing a version retires the one that was active (newest publish wins).
            conn.execute("UPDATE template_versions SET active = 0 WHERE name = ? AND key != ?", (name, key))
        conn.execute(
            "INSERT INTO template_versions (key, name, version, active, body, compile_error, revision) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET active = excluded.active, "
            "body = excluded.body, compile_error = excluded.compile_error, revision = excluded.revision",
            (key, name, version, int(active), text, shelved.error, revision),
        )
        if active:
            self._shelf_ops.append(lambda: self.templates.put(shelved))
        else:
            self._shelf_ops.append(lambda: self.templates.remove(name, version))

    def _write_wave(self, key: str, body: dict[str, Any] | None, text: str | None, revision: int) -> None:
        """A wave: its station and its order_refs in print order (see edge_agent.packing.waves)."""
        if not _WAVE_KEY.match(key):
            raise UnusableChange(f"wave key {key[:40]!r} is not a wave number")
        if body is None or text is None:
            self._store.conn.execute("DELETE FROM waves WHERE wave_id = ?", (int(key),))
            return
        station = body.get("station")
        refs = body.get("order_refs")
        if not isinstance(station, str) or not 0 < len(station) <= _MAX_CODE_CHARS:
            raise UnusableChange(f"wave {key}: station must be a station code")
        if not isinstance(refs, list) or not all(
            isinstance(ref, str) and 0 < len(ref) <= _MAX_REF_CHARS for ref in refs
        ):
            raise UnusableChange(f"wave {key}: order_refs must be a list of order references")
        self._store.conn.execute(
            "INSERT INTO waves (wave_id, station, body, revision) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (wave_id) DO UPDATE SET station = excluded.station, body = excluded.body, "
            "revision = excluded.revision",
            (int(key), station, text, revision),
        )

    def _write_lease(self, key: str, body: dict[str, Any] | None, text: str | None, revision: int) -> None:
        """A block of tracking numbers (or SSCC serials) leased to one agent (see edge_agent.store.numbers).

        Checked here, at sync, so the pack path can trust a lease it finds: a broken one is refused
        and the lease stays as it was.
        """
        if not _WAVE_KEY.match(key):
            raise UnusableChange(f"number lease key {key[:40]!r} is not a lease number")
        if body is None or text is None:
            self._store.conn.execute("DELETE FROM number_leases WHERE id = ?", (int(key),))
            self._reload.add("number_leases")
            return
        problem = _lease_problem(int(key), body)
        if problem:
            raise UnusableChange(f"number lease {key}: {problem}")
        self._store.conn.execute(
            "INSERT INTO number_leases (id, body, revision) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body, revision = excluded.revision",
            (int(key), text, revision),
        )
        self._reload.add("number_leases")

    # -- snapshots ---------------------------------------------------------------------------

    def begin_snapshot(self) -> None:
        """Start staging a snapshot; whatever an earlier, broken snapshot staged is dropped."""
        self._staged.clear()
        self._snapshot_refused = 0
        self._store.conn.execute("DELETE FROM snapshot_staging")
        self.snapshot_open = True

    def stage(self, change: SyncChange) -> None:
        """Hold one snapshot entity until the snapshot ends."""
        try:
            text = change.body.decode("utf-8")
        except UnicodeDecodeError:
            self._snapshot_refused += 1
            log.warning("snapshot entity %s %s refused: its body is not UTF-8", change.kind, change.key)
            return
        self._staged.append((change.kind, change.key, text, change.revision))
        if len(self._staged) >= _STAGE_FLUSH_EVERY:
            self._flush_staged()

    def _flush_staged(self) -> None:
        if not self._staged:
            return
        with self._store.atomic():
            self._store.conn.executemany(
                "INSERT OR REPLACE INTO snapshot_staging (kind, key, body, revision) VALUES (?, ?, ?, ?)",
                self._staged,
            )
        self._staged.clear()

    def finish_snapshot(self, revision: int) -> int:
        """Replace the whole cache with the staged snapshot and set `revision`, in one transaction.

        Returns how many staged entities were refused as unusable.
        """
        conn = self._store.conn
        refused = self._snapshot_refused
        self._flush_staged()
        with self._store.atomic():
            for table in _CACHE_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608
            # Orders are nearly all of a snapshot: moved in one statement, checked by SQLite's
            # JSON functions, instead of a Python round trip per row holding the event loop.
            conn.execute(
                f"INSERT INTO orders (order_ref, body, state, revision) SELECT key, body, "  # noqa: S608
                "CASE WHEN json_type(body, '$.state') = 'text' "
                "THEN json_extract(body, '$.state') ELSE '' END, "
                f"revision FROM snapshot_staging WHERE kind = 'order' AND {_USABLE_ORDER}"
            )
            refused += int(
                conn.execute(
                    f"SELECT COUNT(*) FROM snapshot_staging WHERE kind = 'order' AND NOT {_USABLE_ORDER}"  # noqa: S608
                ).fetchone()[0]
            )
            rows = conn.execute(
                "SELECT kind, key, body, revision FROM snapshot_staging WHERE kind != 'order' ORDER BY rowid"
            )
            while batch := rows.fetchmany(500):
                for kind, key, body, entity_revision in batch:
                    try:
                        self._write(kind, key, body.encode(), entity_revision)
                    except UnusableChange as exc:
                        refused += 1
                        log.warning("snapshot entity %s %s refused: %s", kind, key, exc)
            conn.execute("DELETE FROM snapshot_staging")
            self._store.set_revision(revision)
        self.snapshot_open = False
        # Every view is rebuilt from the new tables.
        self._reload = set(_KEY_COLUMNS)
        self._shelf_ops = [self._load_shelf]
        self._image_label_seen = self.holds_image_label()
        return refused

    def abandon_snapshot(self) -> None:
        """A stream broke mid-snapshot: forget what was staged (the cache is untouched)."""
        self._staged.clear()
        self.snapshot_open = False

    # -- the in-memory views -----------------------------------------------------------------

    def after_commit(self) -> None:
        """Bring the in-memory views up to the committed tables."""
        reload, self._reload = self._reload, set()
        ops, self._shelf_ops = self._shelf_ops, []
        for table in sorted(reload):
            column = _KEY_COLUMNS[table]
            rows = self._store.conn.execute(f"SELECT {column}, body FROM {table}")  # noqa: S608
            setattr(self, table, {key: json.loads(body) for key, body in rows})
        for op in ops:
            op()
        if "stations" in reload:
            for listener in self._stations_listeners:
                listener(self.stations)
        if "number_leases" in reload:
            for lease_listener in self._lease_listeners:
                lease_listener()
        image_label, self._image_label_seen = self._image_label_seen, False
        if image_label:
            for image_listener in self._image_label_listeners:
                image_listener()

    def discard_pending(self) -> None:
        """The transaction rolled back: drop the view changes it would have made."""
        self._reload.clear()
        self._shelf_ops.clear()
        self._image_label_seen = False

    def _load_shelf(self) -> None:
        rows = self._store.conn.execute(
            "SELECT name, version, body, compile_error FROM template_versions WHERE active = 1"
        ).fetchall()
        self.templates.load(rows)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lease_problem(lease_id: int, body: dict[str, Any]) -> str:
    """What is wrong with a number lease's body, or "" (DESIGN.md and dockside.sync: NUMBER_LEASE)."""
    if body.get("id") != lease_id:
        return f"its id {body.get('id')!r} is not its key"
    for field in ("agent_id", "carrier"):
        if not isinstance(body.get(field), str) or not 0 < len(body[field]) <= 64:
            return f"{field} must be a text of 1 to 64 characters"
    kind = body.get("kind")
    if kind not in _LEASE_KINDS:
        return f"kind must be one of {', '.join(_LEASE_KINDS)}, got {str(kind)[:20]!r}"
    first, last, used = body.get("first"), body.get("last"), body.get("used_through")
    if not (isinstance(first, int) and isinstance(last, int) and _whole(first) and _whole(last)):
        return "first and last must be whole serials"
    if not 0 <= first <= last:
        return "first and last must be serials with 0 <= first <= last"
    if used is not None and not _whole(used):
        return "used_through must be a whole serial or null"
    if not isinstance(body.get("retired", False), bool):
        return "retired must be true or false"
    fmt = body.get("format")
    if not isinstance(fmt, dict):
        return "format must be an object"
    try:
        if kind == "range":
            top = 10 ** NumberFormat(**fmt).digits - 1
        else:
            prefix, extension = fmt.get("company_prefix"), fmt.get("extension", 0)
            if not isinstance(prefix, str) or not _whole(extension) or not 0 <= extension <= 9:
                return "an sscc lease's format needs company_prefix (digits) and extension (0-9)"
            top = max_serial(prefix)
    except (ValidationError, DocksideError, TypeError) as exc:
        return f"its format is not usable ({str(exc)[:200]})"
    if last > top:
        return f"last ({last}) has more digits than its format holds (at most {top})"
    return ""


def _packer_problem(key: str, body: dict[str, Any]) -> str:
    """What is wrong with a packer's body, or "" (dockside.sync: PACKER)."""
    if not _WAVE_KEY.match(key) or body.get("id") != int(key):
        return "its key must be its id in decimal"
    name, badge, pin_hash = body.get("name"), body.get("badge"), body.get("pin_hash")
    if not isinstance(name, str) or not 0 < len(name) <= 100 or not name.isprintable():
        return "name must be a printable text of 1 to 100 characters"
    if badge is not None and (
        not isinstance(badge, str) or not 0 < len(badge) <= 64 or not badge.isprintable()
    ):
        return "badge must be null or a printable text of 1 to 64 characters"
    if pin_hash is not None and (
        not isinstance(pin_hash, str)
        or not pin_hash.startswith("$argon2")
        or len(pin_hash) > _MAX_PIN_HASH_CHARS
    ):
        return "pin_hash must be null or an argon2 hash (never a PIN)"
    return ""


def _json_object(raw: bytes, kind: str, key: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnusableChange(f"{kind} {key}: the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise UnusableChange(f"{kind} {key}: the body is {type(body).__name__}, not an object")
    return body
