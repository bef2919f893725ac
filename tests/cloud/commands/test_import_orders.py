"""`dockside-cloud import-orders FILE` against a real cloud: JSON lines, CSV, refusals by line, bad files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bench.demo_data import SHIP_FROM, demo_orders
from bench.stack import Stack, running_stack
from cloud.commands.import_orders import CSV_COLUMNS, import_command


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("import")) as started:
        started.start_cloud()
        started.admin_call(
            "POST", "/api/v1/warehouses", {"code": "WH1", "name": "Warehouse WH1", "ship_from": SHIP_FROM}
        )
        yield started


def run_import(stack: Stack, path: Path, *extra: str, token: str | None = None) -> Result:
    url = f"http://{stack.cloud.ready['http']}"
    return CliRunner().invoke(
        import_command, [str(path), "--cloud", url, "--token", token or stack.admin_token, *extra]
    )


def order(stack: Stack, ref: str) -> dict[str, Any]:
    return dict(stack.admin_call("GET", f"/api/v1/orders/{ref}"))


def test_json_lines_import_in_batches(stack: Stack, tmp_path: Path) -> None:
    orders = demo_orders(2500, prefix="JL")
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))
    result = run_import(stack, path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accepted"] == 2500
    assert report["refused"] == 0
    assert order(stack, "JL-2500")["order_ref"] == "JL-2500"
    # Importing the same file again is safe: orders are keyed by order_ref.
    again = run_import(stack, path, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["accepted"] == 2500


def _csv(rows: list[dict[str, str]]) -> str:
    lines = [",".join(CSV_COLUMNS)]
    for row in rows:
        lines.append(",".join(f'"{row.get(column, "")}"' for column in CSV_COLUMNS))
    return "\n".join(lines) + "\n"


ADDRESS = {
    "ship_to_name": "Li Wei",
    "ship_to_street": "1 Harbour Road",
    "ship_to_city": "Shenzhen",
    "ship_to_country": "CN",
}


def test_csv_rows_of_one_order_become_its_lines(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        _csv(
            [
                {"order_ref": "CSV-1", "warehouse": "WH1", "sku": "MUG", "qty": "2", **ADDRESS},
                {"order_ref": "CSV-1", "warehouse": "WH1", "sku": "TEA", "qty": "1", **ADDRESS},
                {
                    "order_ref": "CSV-2",
                    "warehouse": "WH1",
                    "sku": "MUG",
                    "expected_weight_g": "900",
                    **ADDRESS,
                },
            ]
        ),
        encoding="utf-8",
    )
    result = run_import(stack, path)
    assert result.exit_code == 0, result.output
    assert "2 order(s) imported, 0 refused" in result.stdout
    first = order(stack, "CSV-1")
    assert [(line["sku"], line["qty"]) for line in first["lines"]] == [("MUG", 2), ("TEA", 1)]
    assert first["ship_to"]["name"] == "Li Wei"
    assert order(stack, "CSV-2")["expected_weight_g"] == 900


def test_refusals_name_their_line_and_the_rest_is_imported(stack: Stack, tmp_path: Path) -> None:
    good = demo_orders(2, prefix="MIX")
    no_address = {k: v for k, v in demo_orders(1, prefix="BAD")[0].items() if k != "ship_to"}
    elsewhere = {**demo_orders(1, prefix="FAR")[0], "warehouse": "NOWHERE"}
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(good[0]),
                "{not json",
                json.dumps(no_address),
                "",
                json.dumps(elsewhere),
                json.dumps(good[1]),
            ]
        )
        + "\n"
    )
    result = run_import(stack, path, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["accepted"] == 2
    assert [error["line"] for error in report["errors"]] == [2, 3, 5]
    assert "not valid JSON" in report["errors"][0]["message"]
    assert "ship_to" in report["errors"][1]["message"]
    assert report["errors"][2]["order_ref"] == "FAR-0001"
    assert order(stack, "MIX-0002")["order_ref"] == "MIX-0002"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", b"", "is empty"),
        ("latin1.jsonl", '{"order_ref": "Ä"}\n'.encode("latin-1"), "not UTF-8"),
        ("huge.jsonl", b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}\n', "longer than 1024 KB"),
        ("header.csv", b"order_ref,warehouse,colour\nA,WH1,red\n", "missing column(s) ship_to_name"),
        ("orders.txt", b"{}\n", "--format csv or --format jsonl"),
    ],
)
def test_unusable_files_are_refused_with_the_fix(
    stack: Stack, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = run_import(stack, path)
    assert result.exit_code != 0
    assert message in result.output


def test_a_viewer_token_cannot_import(stack: Stack, tmp_path: Path) -> None:
    out = stack.run(
        [
            "dockside-cloud",
            "create-token",
            "--role",
            "viewer",
            "--name",
            "v",
            "--database-url",
            stack.database_url,
        ]
    )
    viewer = out.strip().splitlines()[-1].strip()
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(demo_orders(1, prefix="VIEW")[0]) + "\n")
    result = run_import(stack, path, token=viewer)
    assert result.exit_code == 1
    assert "the cloud refused the import (403)" in result.output


def test_an_unreachable_cloud_says_what_to_check(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(json.dumps(demo_orders(1)[0]) + "\n")
    result = CliRunner().invoke(
        import_command, [str(path), "--cloud", "http://127.0.0.1:9", "--token", "x", "--batch-size", "1"]
    )
    assert result.exit_code == 1
    assert "cannot reach the cloud" in result.output
