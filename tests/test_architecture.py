"""DESIGN.md's import rules hold: each import-linter contract of .importlinter is kept.

The contracts are also run by `make lint`; here each one is its own test, so a broken one is
named. And the contracts are proved to bite: a copy of the code with one forbidden import (a
crossing, a layer upside down, a cycle hidden in a function) must fail the matching contract.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
PACKAGES = ("dockside", "cloud", "edge_agent", "hardware_mocks")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contracts() -> dict[str, str]:
    """Each contract of .importlinter: its id and its name."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    prefix = "importlinter:contract:"
    return {
        section.removeprefix(prefix): config[section]["name"]
        for section in config.sections()
        if section.startswith(prefix)
    }


def _lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the packages under `root` (its first entry on the path)."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *selected, str(root / ".importlinter")],
        cwd=root,
        # Wide enough that no contract's name is wrapped onto a second line.
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_rule_of_design_md_has_a_contract() -> None:
    assert set(_contracts()) == {
        "sides",
        "core",
        "mocks",
        "product-without-mocks",
        "cloud-layers",
        "edge-layers",
        "no-cycles",
    }


@pytest.fixture(scope="module")
def report() -> str:
    """What lint-imports says of the code as it is (run once for every contract's test)."""
    return _lint(ROOT).stdout


@pytest.mark.parametrize("contract", _contracts())
def test_the_contract_is_kept(report: str, contract: str) -> None:
    assert f"{_contracts()[contract]} KEPT" in report.splitlines(), report


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four packages and the contracts, copied (Python files only) to a throwaway folder."""
    root = tmp_path_factory.mktemp("architecture")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            root / package,
            ignore=lambda folder, names: [
                name for name in names if not name.endswith(".py") and not (Path(folder) / name).is_dir()
            ],
        )
    shutil.copy(CONFIG, root / ".importlinter")
    return root


@pytest.mark.parametrize(
    ("module", "bad_import", "contract", "reported"),
    [
        ("edge_agent/agent.py", "import cloud.metrics", "sides", "edge_agent.agent -> cloud.metrics"),
        ("cloud/metrics.py", "import edge_agent.metrics", "sides", "cloud.metrics -> edge_agent.metrics"),
        ("dockside/orders.py", "import cloud.metrics", "core", "dockside.orders -> cloud.metrics"),
        (
            "hardware_mocks/scale.py",
            "import dockside.orders",
            "mocks",
            "hardware_mocks.scale -> dockside.orders",
        ),
        (
            "edge_agent/agent.py",
            "import hardware_mocks.scale",
            "product-without-mocks",
            "edge_agent.agent -> hardware_mocks.scale",
        ),
        (
            "cloud/storage/store.py",
            "import cloud.api.errors",
            "cloud-layers",
            "cloud.storage.store -> cloud.api",
        ),
        ("cloud/metrics.py", "import cloud.storage.schema", "cloud-layers", "cloud.metrics -> cloud.storage"),
        (
            "edge_agent/store/database.py",
            "import edge_agent.http.api",
            "edge-layers",
            "edge_agent.store.database -> edge_agent.http",
        ),
        (
            "edge_agent/devices/scale.py",
            "import edge_agent.sync.identity",
            "edge-layers",
            "edge_agent.devices.scale -> edge_agent.sync",
        ),
        # An import inside a function still counts: it cannot hide a cycle.
        (
            "dockside/rule_conditions.py",
            "def _hidden() -> None:\n    import dockside.rules",
            "no-cycles",
            "No cycles are allowed in dockside.",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    copy_of_the_code: Path, module: str, bad_import: str, contract: str, reported: str
) -> None:
    path = copy_of_the_code / module
    original = path.read_text()
    path.write_text(f"{original}\n\n{bad_import}\n")
    try:
        result = _lint(copy_of_the_code, contract)
    finally:
        path.write_text(original)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout, result.stdout
    assert reported in result.stdout, result.stdout
