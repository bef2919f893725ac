"""`dockside-cloud import-orders FILE`: load orders from a CSV or JSON-lines file through the admin API.

The import goes through `POST /api/v1/orders` with a bearer token, so it has the same scopes and
validation as an OMS: a viewer's token cannot import, and a warehouse-scoped token only reaches
its warehouses. Orders are sent in batches; ingest is idempotent by order_ref, so a batch that
failed on the network is simply sent again, and re-running a whole import is harmless.

JSON lines: one order object per line, exactly as the API takes it. CSV: one row per order line
with a header naming the columns below (fields may be quoted, but
not hold line breaks); consecutive rows with the same order_ref make one order
with several lines (the first row gives the order's own fields).

Every refusal names the file's line, so a person can fix the file and run the import again.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import httpx

__all__ = [
    "CSV_COLUMNS",
    "ImportFileError",
    "ImportReport",
    "import_command",
    "import_orders",
    "read_orders",
]

MAX_LINE_BYTES = 1024 * 1024
BATCH = 1000
CSV_COLUMNS = (
    "order_ref",
    "warehouse",
    "service_level",
    "ship_to_name",
    "ship_to_company",
    "ship_to_street",
    "ship_to_street2",
    "ship_to_city",
    "ship_to_region",
    "ship_to_postal_code",
    "ship_to_country",
    "ship_to_phone",
    "sku",
    "qty",
    "description",
    "expected_weight_g",
    "value_amount",
    "value_currency",
)
_REQUIRED = (
    "order_ref",
    "warehouse",
    "ship_to_name",
    "ship_to_street",
    "ship_to_city",
    "ship_to_country",
    "sku",
)


class ImportFileError(click.ClickException):
    """The file cannot be read as orders at all (not a refusal of single orders)."""


@dataclass
class ImportReport:
    """What an import did: accepted orders, refusals by file line, and how long it took."""

    accepted: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "refused": len(self.refused),
            "errors": self.refused,
            "seconds": round(self.seconds, 3),
            "orders_per_second": round(self.accepted / self.seconds, 1) if self.seconds else None,
        }


@dataclass
class _Item:
    line: int
    order: Any  # the decoded order, or None when the line itself was unusable
    problem: str = ""


def _text_lines(handle: IO[bytes], progress: Any) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(handle, start=1):
        progress.update(len(raw))
        if len(raw) > MAX_LINE_BYTES:
            raise ImportFileError(
                f"line {number} is longer than {MAX_LINE_BYTES // 1024} KB: is this really an orders file?"
            )
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise ImportFileError(
                f"line {number} is not UTF-8 text: save the file as UTF-8 and import it again"
            ) from None


def _json_lines(handle: IO[bytes], progress: Any) -> Iterator[_Item]:
    for number, text in _text_lines(handle, progress):
        if not text.strip():
            continue
        try:
            yield _Item(number, json.loads(text))
        except json.JSONDecodeError as exc:
            yield _Item(number, None, f"not valid JSON ({exc.msg} at column {exc.colno}): fix the line")


def _csv_rows(handle: IO[bytes], progress: Any) -> Iterator[_Item]:
    lines = _text_lines(handle, progress)
    first = next(lines, None)
    if first is None:
        return
    header = [name.strip() for name in next(csv.reader([first[1]]))]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in _REQUIRED if name not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise ImportFileError(
            f"the CSV header has {' and '.join(parts)}: use the columns {', '.join(CSV_COLUMNS)}"
        )
    current: _Item | None = None
    for number, text in lines:
        if not text.strip():
            continue
        values = next(csv.reader([text]), [])
        if len(values) != len(header):
            if current is not None:
                yield current
                current = None
            yield _Item(number, None, f"has {len(values)} fields, the header {len(header)}: fix the row")
            continue
        row = {name: value.strip() for name, value in zip(header, values, strict=True)}
        try:
            line = _order_line(row)
        except ValueError as exc:
            yield _Item(number, None, str(exc))
            continue
        if current is not None and current.order.get("order_ref") == row["order_ref"]:
            current.order["lines"].append(line)
            continue
        if current is not None:
            yield current
        current = _Item(number, _csv_order(row, line))
    if current is not None:
        yield current


def _order_line(row: dict[str, str]) -> dict[str, Any]:
    line: dict[str, Any] = {"sku": row["sku"]}
    if row.get("qty"):
        try:
            line["qty"] = int(row["qty"])
        except ValueError:
            raise ValueError(f"qty {row['qty']!r} is not a whole number: fix the row") from None
    if row.get("description"):
        line["description"] = row["description"]
    return line


def _csv_order(row: dict[str, str], line: dict[str, Any]) -> dict[str, Any]:
    ship_to = {
        key.removeprefix("ship_to_"): value
        for key, value in row.items()
        if key.startswith("ship_to_") and value
    }
    order: dict[str, Any] = {
        "order_ref": row["order_ref"],
        "warehouse": row["warehouse"],
        "ship_to": ship_to,
        "lines": [line],
    }
    if row.get("service_level"):
        order["service_level"] = row["service_level"]
    if row.get("expected_weight_g"):
        # Left as text when it is not a number: the API names the field and the problem.
        text = row["expected_weight_g"]
        order["expected_weight_g"] = int(text) if text.isdigit() else text
    if row.get("value_amount") or row.get("value_currency"):
        order["value"] = {"amount": row.get("value_amount", ""), "currency": row.get("value_currency", "")}
    return order


def read_orders(handle: IO[bytes], kind: str, progress: Any) -> Iterator[_Item]:
    """The file's orders (or unusable lines), each with the file line it starts on."""
    return _csv_rows(handle, progress) if kind == "csv" else _json_lines(handle, progress)


def _send(client: httpx.Client, batch: list[_Item], report: ImportReport, tries: int = 3) -> None:
    body = {"orders": [item.order for item in batch]}
    for attempt in range(tries):
        try:
            answer = client.post("/api/v1/orders", json=body)
        except httpx.TransportError as exc:
            if attempt == tries - 1:
                raise click.ClickException(
                    f"cannot reach the cloud at {client.base_url} ({exc}): check --cloud and the network; "
                    f"{report.accepted} orders were imported before this, and importing again is safe"
                ) from None
            time.sleep(0.5 * 2**attempt)
            continue
        if answer.status_code >= 500 and attempt < tries - 1:
            time.sleep(0.5 * 2**attempt)
            continue
        break
    if answer.status_code >= 400:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:200]
        raise click.ClickException(
            f"the cloud refused the import ({answer.status_code}): {message}; "
            f"{report.accepted} orders were imported before this"
        )
    result = answer.json()
    report.accepted += len(result.get("accepted", []))
    for error in result.get("errors", []):
        item = batch[error["index"]]
        report.refused.append(
            {
                "line": item.line,
                "order_ref": error.get("order_ref"),
                "code": error.get("code"),
                "message": error.get("message"),
            }
        )


def import_orders(
    client: httpx.Client, handle: IO[bytes], kind: str, progress: Any, *, batch_size: int = BATCH
) -> ImportReport:
    """Send every order of `handle` through `client` in batches; refusals keep their file line."""
    started = time.perf_counter()
    report = ImportReport()
    batch: list[_Item] = []
    for item in read_orders(handle, kind, progress):
        if item.order is None:
            report.refused.append(
                {"line": item.line, "order_ref": None, "code": "unreadable_line", "message": item.problem}
            )
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            _send(client, batch, report)
            batch = []
    if batch:
        _send(client, batch, report)
    report.refused.sort(key=lambda error: error["line"])
    report.seconds = time.perf_counter() - started
    return report


def _kind_of(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise click.UsageError(f"cannot tell the format of {path.name}: pass --format csv or --format jsonl")


@click.command("import-orders")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--cloud",
    envvar="DOCKSIDE_CLOUD_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    show_envvar=True,
    help="The cloud's admin API base URL.",
)
@click.option(
    "--token",
    envvar="DOCKSIDE_TOKEN",
    show_envvar=True,
    required=True,
    help="An API token allowed to ingest orders (admin, editor or integration; see create-token).",
)
@click.option(
    "--format",
    "kind",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="csv or jsonl (JSON lines). Default: from the file name (.csv, .jsonl/.ndjson/.json).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=BATCH,
    show_default=True,
    help="Orders per API call.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def import_command(
    file: Path, cloud: str, token: str, kind: str | None, batch_size: int, as_json: bool
) -> None:
    """Import orders from FILE (CSV or JSON lines) through the admin API, with a progress bar.

    FILE is a JSON-lines file (one order object per line, as POST /api/v1/orders takes) or a CSV
    with the columns order_ref, warehouse, service_level, ship_to_name, ship_to_company,
    ship_to_street, ship_to_street2, ship_to_city, ship_to_region, ship_to_postal_code,
    ship_to_country, ship_to_phone, sku, qty, description, expected_weight_g, value_amount,
    value_currency (one row per order line). Re-importing is safe: orders are keyed by order_ref.
    Exits 1 when any order was refused; each refusal names its line in FILE.
    """
    kind = _kind_of(file, kind)
    size = file.stat().st_size
    if size == 0:
        raise ImportFileError(f"{file} is empty: nothing to import")
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=cloud.rstrip("/"), headers=headers, timeout=120) as client,
        file.open("rb") as handle,
        click.progressbar(length=size, label=f"importing {file.name}", file=sys.stderr) as progress,
    ):
        report = import_orders(client, handle, kind, progress, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        rate = report.to_dict()["orders_per_second"]
        click.echo(
            f"{report.accepted} order(s) imported, {len(report.refused)} refused"
            + (f" ({rate} orders/s)" if rate else "")
        )
        for error in report.refused[:50]:
            ref = f" {error['order_ref']}" if error["order_ref"] else ""
            click.echo(f"  line {error['line']}{ref}: {error['message']}", err=True)
        if len(report.refused) > 50:
            click.echo(f"  ... and {len(report.refused) - 50} more (use --json for all)", err=True)
    if report.refused:
        raise SystemExit(1)
