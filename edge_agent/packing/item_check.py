"""The item check at a packing station: the packer scans each item before the parcel is weighed.

    checks.required()                               # the warehouse's `item_check` setting
    checks.of_order("DEMO-0001", "S1")              # the order's lines, with what is scanned so far
    checks.scan("DEMO-0001", "S1", "4006381333931")  # one unit counted, or WrongItem / ExtraUnit
    checks.refuse_unless_checked("DEMO-0001")       # the pack's gate: ItemsNotChecked (409)

A scan names an item by its GTIN (EAN-8, UPC-A, EAN-13, GTIN-14, plain or as AI (01) of a GS1
code, read with `dockside.scanning`) or by its SKU or the line's other barcode (compared without
case). GTINs compare as GTIN-14, so a UPC-A scan matches the EAN-13 the OMS sent. Each unit counts
against the first line it matches that still needs one; a scan that matches no line is a wrong
item (409 `wrong_item`), one past every matching line's quantity an extra unit (409 `extra_unit`).
Both are refused loudly, counted nowhere and recorded as an `item_check_refused` event (with the
packer), so the cloud sees how often the wrong thing reaches a packing table. A scan over
`MAX_ITEM_SCAN_CHARS` characters, or with control characters (GS excepted, as FNC1), is refused
422 `item_scan_unreadable` before any other work.

The check of an order lives in the agent's store (`item_checks`, one row an order: the units
scanned per line, bounded by the order's own lines), so a reload of the page or a restart of the
agent keeps the packer's progress. An order whose lines the cloud changed since the check began
starts over (what was counted may no longer be in the order). The check covers the whole order:
a multi-parcel order is checked once, before its first parcel. Checks untouched for
`KEEP_CHECKS_DAYS` are forgotten.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from stdnum import ean

from dockside.errors import Conflict, InputError, NotFound
from dockside.orders import GTIN_LENGTHS, OrderLine, SyncedOrder
from dockside.scanning import GS, ScanReader, ScanUnreadable
from dockside.sync import EventKind
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store, now_ms
from edge_agent.store.outbox import Outbox

__all__ = [
    "KEEP_CHECKS_DAYS",
    "MAX_ITEM_SCAN_CHARS",
    "ExtraUnit",
    "ItemCheck",
    "ItemChecks",
    "ItemScanUnreadable",
    "ItemsNotChecked",
    "WrongItem",
    "item_check_required",
    "item_key",
]

# An item's barcode is short (a GS1-128 holds at most 48 data characters, a GTIN 14): more is a
# stuck key or a paste.
MAX_ITEM_SCAN_CHARS: Final = 128
KEEP_CHECKS_DAYS: Final = 14
# Whitespace to trim: every kind except the ASCII separators (GS is FNC1 in a GS1 code).
_BLANKS: Final = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\x1c\x1d\x1e\x1f")
_CONTROL = re.compile(r"[\x00-\x1c\x1e-\x1f\x7f-\x9f\u2028\u2029]")
_AIM_IDENTIFIER = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_GS1_SYMBOLOGIES: Final = frozenset({"]C1", "]e0", "]d2", "]Q3", "]J1"})
# GS1 codes name the item by AI (01), its GTIN; the agent's scanner prefix and suffix still apply.
_GTIN_AI: Final = ("01",)
_GS1_GTIN_DIGITS = re.compile(r"01[0-9]{14}")


class ItemScanUnreadable(InputError):
    """What the scanner typed names no item: too long, control characters, a broken GS1 code (422)."""

    code = "item_scan_unreadable"


class WrongItem(Conflict):
    """The scanned item is not in the order (409): it stays out of the parcel."""

    code = "wrong_item"


class ExtraUnit(Conflict):
    """One unit more of an item than the order has (409): it stays out of the parcel."""

    code = "extra_unit"


class ItemsNotChecked(Conflict):
    """The pack of an order whose items are not all scanned yet, where the warehouse checks them (409)."""

    code = "items_not_checked"


def item_check_required(cache: Cache, warehouse: str) -> bool:
    """Whether the warehouse's stations check items before weighing (its synced `item_check`
    setting, off until the cloud says true)."""
    return cache.warehouse_settings(warehouse).item_check


def item_key(code: str) -> str:
    """What a code is compared by: a valid GTIN as its GTIN-14, anything else without case."""
    if code.isascii() and code.isdigit() and len(code) in GTIN_LENGTHS and ean.is_valid(code):
        return "gtin:" + code.zfill(14)
    return code.casefold()


@dataclass(frozen=True, slots=True)
class ItemCheck:
    """An order's check as the station shows it: each line with what is scanned of it."""

    order_ref: str
    station: str
    required: bool
    lines: list[OrderLine]
    scanned: list[int]
    restarted: bool = False  # the order's lines changed in the cloud: the count began again

    @property
    def complete(self) -> bool:
        return all(count >= line.qty for line, count in zip(self.lines, self.scanned, strict=True))

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "order_ref": self.order_ref,
            "station": self.station,
            "required": self.required,
            "complete": self.complete,
            "restarted": self.restarted,
            "lines": [
                {
                    "line": n,
                    "sku": line.sku,
                    "barcode": line.barcode,
                    "description": line.description,
                    "quantity": line.qty,
                    "scanned": count,
                }
                for n, (line, count) in enumerate(zip(self.lines, self.scanned, strict=True), 1)
            ],
            "units": sum(line.qty for line in self.lines),
            "units_scanned": sum(self.scanned),
            **extra,
        }


class ItemChecks:
    """The item checks of one agent's stations, kept in its store."""

    def __init__(
        self,
        store: Store,
        cache: Cache,
        outbox: Outbox,
        *,
        warehouse: str,
        packer_at: Callable[[str], int | None] = lambda _station: None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._outbox = outbox
        self._warehouse = warehouse
        self._gtins = ScanReader(order_ais=_GTIN_AI)
        self._packer_at = packer_at
        self._forget_old()

    def use_scanner(self, scans: ScanReader) -> None:
        """Take off what the stations' scanners add (the agent's [scanner] prefix and suffix)."""
        self._gtins = ScanReader(prefix=scans.prefix, suffix=scans.suffix, order_ais=_GTIN_AI)

    def required(self) -> bool:
        """Whether this warehouse checks items before weighing."""
        return item_check_required(self._cache, self._warehouse)

    def of_order(self, order_ref: str, station: str) -> ItemCheck:
        """The order's check as `station` sees it: where it was left (at any station), or not begun."""
        return self._read(self._order(order_ref), station)

    def current(self, station: str) -> ItemCheck | None:
        """The check last worked on at `station` that is not complete, if any (a reloaded page resumes it)."""
        row = self._store.conn.execute(
            "SELECT order_ref FROM item_checks WHERE station = ? AND completed_at_ms IS NULL "
            "ORDER BY updated_at_ms DESC LIMIT 1",
            (station,),
        ).fetchone()
        if row is None:
            return None
        order = self._cache.order(str(row[0]))
        if order is None or order.state == "cancelled":
            return None
        return self._read(order, station)

    def scan(self, order_ref: str, station: str, scanned: str) -> ItemCheck:
        """Count one unit of the item `scanned` names against the order's lines.

        ItemScanUnreadable (422) for a scan that names no item; WrongItem or ExtraUnit (409),
        recorded as an `item_check_refused` event, for an item that must stay out of the parcel.
        """
        text = self.read_scan(scanned)
        key = item_key(text)
        order = self._order(order_ref)
        check = self._read(order, station)
        matching = [n for n, line in enumerate(check.lines) if key in _line_keys(line)]
        if not matching:
            self._refuse(order_ref, station, "wrong_item", text, None)
            raise WrongItem(
                f"wrong item: {text} is not in order {order_ref}. Put it aside, not in the "
                "parcel, and scan an item the order lists"
            )
        open_lines = [n for n in matching if check.scanned[n] < check.lines[n].qty]
        if not open_lines:
            line = check.lines[matching[0]]
            wanted = sum(check.lines[n].qty for n in matching)
            self._refuse(order_ref, station, "extra_unit", text, line.sku)
            raise ExtraUnit(
                f"one too many: order {order_ref} has {wanted} of {line.sku}, all scanned already. "
                "Take this unit out of the parcel"
            )
        counts = list(check.scanned)
        counts[open_lines[0]] += 1
        counted = ItemCheck(order_ref, station, check.required, check.lines, counts, check.restarted)
        self._write(counted, order)
        return counted

    def set_aside(self, station: str) -> None:
        """The packer left the order's check (Esc): its count stays, the station no longer resumes it."""
        with self._store.atomic():
            self._store.conn.execute(
                "UPDATE item_checks SET station = '' WHERE station = ? AND completed_at_ms IS NULL",
                (station,),
            )

    def reset(self, order_ref: str, station: str) -> ItemCheck:
        """Begin the order's check again from nothing (the packer emptied the parcel)."""
        order = self._order(order_ref)
        with self._store.atomic():
            self._store.conn.execute("DELETE FROM item_checks WHERE order_ref = ?", (order_ref,))
        return self.of_order(order.order.order_ref, station)

    def refuse_unless_checked(self, order_ref: str, order: SyncedOrder) -> None:
        """The pack's gate: ItemsNotChecked unless the warehouse checks no items or every unit of
        `order` is scanned."""
        if not self.required():
            return
        check = self._read(order, "")
        if check.complete:
            return
        left = sum(max(line.qty - count, 0) for line, count in zip(check.lines, check.scanned, strict=True))
        raise ItemsNotChecked(
            f"the items of order {order_ref} are not checked yet ({left} unit(s) still to scan): scan "
            "the order at the station and scan each item, then weigh and print"
        )

    def read_scan(self, scanned: str) -> str:
        """The code a scan names an item by (a GS1 code's GTIN, else the scan's text without the
        scanner's prefix, suffix or AIM identifier); ItemScanUnreadable when it names none."""
        if len(scanned) > MAX_ITEM_SCAN_CHARS:
            raise ItemScanUnreadable(
                f"the scan is {len(scanned):,} characters long, more than the {MAX_ITEM_SCAN_CHARS} an "
                "item's barcode has: clear the scan field and scan the item's barcode alone"
            )
        text = scanned.strip(_BLANKS)
        reader = self._gtins
        if reader.prefix and text.startswith(reader.prefix):
            text = text[len(reader.prefix) :]
        if reader.suffix and text.endswith(reader.suffix):
            text = text[: -len(reader.suffix)]
        text = text.strip(_BLANKS)
        control = _CONTROL.search(text)
        if control:
            raise ItemScanUnreadable(
                f"the scan holds a control character (U+{ord(control.group()):04X}): set the scanner to "
                "send the barcode's text only"
            )
        aim = _AIM_IDENTIFIER.match(text)
        gs1 = aim.group() in _GS1_SYMBOLOGIES if aim else text.startswith("(") or GS in text
        if gs1:
            try:
                return reader.order_ref(text)
            except ScanUnreadable:
                raise ItemScanUnreadable(
                    "the scan is a GS1 code without a readable GTIN (AI 01): scan the item's own "
                    "barcode (EAN or UPC) or its SKU"
                ) from None
        if aim:
            text = text[aim.end() :]
        if not text or GS in text:
            raise ItemScanUnreadable("the scan is empty: scan the item's barcode")
        if _GS1_GTIN_DIGITS.fullmatch(text) and ean.is_valid(text[2:]):
            # A GS1-128 of the GTIN alone, from a scanner that sends no symbology identifier.
            return text[2:]
        return text

    # -- store -----------------------------------------------------------------------------------

    def _order(self, order_ref: str) -> SyncedOrder:
        order = self._cache.order(order_ref) if len(order_ref) <= 64 else None
        if order is None:
            raise NotFound(
                f"order {order_ref[:64]} is not known at this agent: check the scanned barcode, or wait "
                "a moment for the agent to sync from the cloud and scan again",
                code="order_not_found",
            )
        if order.state == "cancelled":
            raise Conflict(
                f"order {order_ref} was cancelled: do not ship it; set the parcel aside for your supervisor",
                code="order_cancelled",
            )
        return order

    def _read(self, order: SyncedOrder, station: str) -> ItemCheck:
        lines = list(order.order.lines)
        row = self._store.conn.execute(
            "SELECT station, lines_key, scanned FROM item_checks WHERE order_ref = ?",
            (order.order.order_ref,),
        ).fetchone()
        fresh = [0] * len(lines)
        if row is None:
            return ItemCheck(order.order.order_ref, station, self.required(), lines, fresh)
        if row[1] != _lines_key(lines):
            return ItemCheck(order.order.order_ref, station, self.required(), lines, fresh, restarted=True)
        counts = [int(n) for n in json.loads(row[2])]
        return ItemCheck(order.order.order_ref, station or str(row[0]), self.required(), lines, counts)

    def _write(self, check: ItemCheck, order: SyncedOrder) -> None:
        at = now_ms()
        with self._store.atomic():
            self._store.conn.execute(
                "INSERT INTO item_checks (order_ref, station, lines_key, scanned, started_at_ms, "
                "updated_at_ms, completed_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (order_ref) DO UPDATE SET station = excluded.station, "
                "lines_key = excluded.lines_key, scanned = excluded.scanned, "
                "updated_at_ms = excluded.updated_at_ms, completed_at_ms = excluded.completed_at_ms",
                (
                    check.order_ref,
                    check.station,
                    _lines_key(check.lines),
                    json.dumps(check.scanned),
                    at,
                    at,
                    at if check.complete else None,
                ),
            )

    def _refuse(self, order_ref: str, station: str, reason: str, scanned: str, sku: str | None) -> None:
        body = {"reason": reason, "scan": scanned, "sku": sku, "packer": self._packer_at(station)}
        with self._store.atomic():
            self._outbox.record(EventKind.ITEM_CHECK_REFUSED, body, order_ref=order_ref, station=station)
        self._outbox.notify()

    def _forget_old(self) -> None:
        cutoff = now_ms() - KEEP_CHECKS_DAYS * 86_400_000
        with self._store.atomic():
            self._store.conn.execute("DELETE FROM item_checks WHERE updated_at_ms < ?", (cutoff,))


def _line_keys(line: OrderLine) -> set[str]:
    keys = {item_key(line.sku)}
    if line.barcode:
        keys.add(item_key(line.barcode))
    return keys


def _lines_key(lines: list[OrderLine]) -> str:
    """What the check's counts are counts of: the lines' codes and quantities, in order."""
    text = json.dumps([[line.sku, line.barcode, line.qty] for line in lines], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
