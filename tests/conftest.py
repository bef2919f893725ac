"""How the suite runs: in parallel and in what order, with which Hypothesis seed, on which databases.

Parallel runs (pytest-xdist, `--dist loadfile`):

Each test module is one unit of work, handed whole to whichever worker is free, so a module
whose tests share a fixture (one stack, one browser, the built binary) starts it once and keeps
its order. The modules that speak real mDNS on loopback form a single unit, run one after
another: each browses for every printer announced on loopback, and another module's
announcement would be a stranger. (Not `--dist loadgroup` with xdist_group marks: with pytest
9.2 xdist 3.8 can no longer tag the test ids with their group, and the marks are ignored.)

Modules are handed out longest first (`--no-loadscope-reorder` keeps the order given here), so
the long ones start at once instead of ending the run on one worker while the others idle: the
order is by each module's seconds in `tests/module_seconds.json`, measured on a whole run and
refreshed with `make test-times` when modules change much. A module the file does not know yet
is placed by a guess (one marked slow as the longest; other end-to-end and browser modules as a
typical one of those; the rest as a short one). Without xdist (`pytest tests/e2e/test_scales.py`)
only the order applies. With `DOCKSIDE_RECORD_MODULE_SECONDS=path` the run writes that file: each
module's setup, call and teardown seconds summed over its tests.

Hypothesis: in CI (`CI` set, as `.ci/run` does) the `ci` profile runs every property test from one
seed, printed in the header, so a run is the same each time and a failure replays with
`pytest --hypothesis-seed=N` (or `DOCKSIDE_HYPOTHESIS_SEED=N make test`); a failing example also
prints its `@reproduce_failure` blob. Elsewhere Hypothesis explores with fresh random seeds.

PostgreSQL: the storage tests run on SQLite and, when DOCKSIDE_TEST_POSTGRES_URL is set (`make
test` sets it), on PostgreSQL too. Without it their PostgreSQL variants are not collected at all,
so the run says so at its start and end, with their number, instead of passing quietly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, profiles
from cryptography.fernet import Fernet
from hypothesis import settings

from dockside import typed_secrets

# TOTP and webhook secrets are sealed with this key (cloud/storage/sealed_secrets.py) in the test process
# and every cloud it starts; a test of a missing key removes it with monkeypatch.
os.environ.setdefault("DOCKSIDE_SECRET_KEY", Fernet.generate_key().decode("ascii"))

# Passwords and PINs hashed in the test processes use argon2's cheapest parameters: at the
# production ones each hash takes a tenth of a second on both cores, hundreds of times over. The
# clouds and agents the tests start as processes keep the production parameters, which
# tests/dockside/test_typed_secrets.py pins.
typed_secrets.HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)


@pytest.fixture
def production_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped argon2 parameters, for a test of what happens while hashes take their real time."""
    monkeypatch.setattr(typed_secrets, "HASHER", PasswordHasher())


# Modules that announce or browse zeroconf services on loopback.
MDNS_MODULES = frozenset(
    {
        "tests/edge_agent/devices/test_discovery.py",
        "tests/edge_agent/commands/test_discover.py",
        "tests/hardware_mocks/test_mock_advertising.py",
    }
)
# Seconds per module of a whole run (see the module docstring), and the guesses for new modules.
MODULE_SECONDS_FILE = Path(__file__).with_name("module_seconds.json")
RECORD_MODULE_SECONDS_ENV = "DOCKSIDE_RECORD_MODULE_SECONDS"
# Modules under these take tens of seconds to minutes on real processes.
SLOW_FIRST = ("tests/e2e/", "tests/browser/")
GUESS_SLOW_S, GUESS_END_TO_END_S, GUESS_OTHER_S = 600.0, 30.0, 1.0

# No example database in CI: what a run tries depends on the seed alone, never on a local cache.
settings.register_profile("ci", print_blob=True, database=None)
# The seed of every CI run unless DOCKSIDE_HYPOTHESIS_SEED says otherwise (any integer).
CI_HYPOTHESIS_SEED = "20261207"

POSTGRES_VARIANTS_MISSING: pytest.StashKey[int] = pytest.StashKey()


def _postgres_configured() -> bool:
    # tests/cloud/conftest.py adds the PostgreSQL variants under the same condition.
    return bool(os.environ.get("DOCKSIDE_TEST_POSTGRES_URL", ""))


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's own plugin reads its options
def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not config.getoption("hypothesis_profile"):
        config.option.hypothesis_profile = "ci"
    if config.getoption("hypothesis_profile") == "ci" and config.getoption("hypothesis_seed") is None:
        config.option.hypothesis_seed = os.environ.get("DOCKSIDE_HYPOTHESIS_SEED") or CI_HYPOTHESIS_SEED


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    seed = config.getoption("hypothesis_seed")
    if seed is not None:
        lines.append(
            f"hypothesis seed {seed} (profile {config.getoption('hypothesis_profile') or 'default'}): "
            f"replay with `pytest --hypothesis-seed={seed}` or `DOCKSIDE_HYPOTHESIS_SEED={seed} make test`"
        )
    if not _postgres_configured():
        lines.append(
            "DOCKSIDE_TEST_POSTGRES_URL is not set: the PostgreSQL variants of the storage tests "
            "are NOT collected (`make test` sets postgresql://postgres@127.0.0.1:5432/test)"
        )
    return lines


def _count_missing_postgres_variants(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test run on SQLite through `database_url` lacks its PostgreSQL twin in this run."""
    if _postgres_configured():
        return
    missing = sum(
        1
        for item in items
        if (callspec := getattr(item, "callspec", None)) is not None
        and callspec.params.get("database_url") == "sqlite"
    )
    config.stash[POSTGRES_VARIANTS_MISSING] = missing
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints the summary
        workeroutput["postgres_variants_missing"] = missing


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: every worker collects the whole suite, so any one of them has the count."""
    missing = getattr(node, "workeroutput", {}).get("postgres_variants_missing")
    if missing is not None:
        node.config.stash[POSTGRES_VARIANTS_MISSING] = int(missing)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    missing = config.stash.get(POSTGRES_VARIANTS_MISSING, 0)
    if missing:
        terminalreporter.write_sep(
            "!",
            f"{missing} PostgreSQL variants were NOT run: DOCKSIDE_TEST_POSTGRES_URL is not set "
            "(`make test` sets it)",
            red=True,
            bold=True,
        )


def _module_path(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _measured_seconds() -> dict[str, float]:
    """`tests/module_seconds.json` as {module path: seconds}; empty (all guessed) if unreadable."""
    try:
        measured = json.loads(MODULE_SECONDS_FILE.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(measured, dict):
        return {}
    return {
        str(path): float(seconds) for path, seconds in measured.items() if isinstance(seconds, int | float)
    }


def _guess_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("slow") is not None:
        return GUESS_SLOW_S
    return GUESS_END_TO_END_S if _module_path(item.nodeid).startswith(SLOW_FIRST) else GUESS_OTHER_S


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _count_missing_postgres_variants(config, items)
    measured = _measured_seconds()
    # Whole modules move, in their own order, so module fixtures start once.
    module_seconds: dict[str, float] = {}
    for item in items:
        path = _module_path(item.nodeid)
        if path in measured:
            module_seconds[path] = measured[path]
        else:
            module_seconds[path] = max(module_seconds.get(path, 0.0), _guess_seconds(item))
    # The mDNS modules are one unit of work: they go where the first of them would.
    mdns_seconds = sum(seconds for path, seconds in module_seconds.items() if path in MDNS_MODULES)
    for path in MDNS_MODULES & module_seconds.keys():
        module_seconds[path] = mdns_seconds
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-module_seconds[_module_path(item.nodeid)], order[id(item)]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Sum each module's seconds (on the controller, from every worker's reports) when recording."""
    if not os.environ.get(RECORD_MODULE_SECONDS_ENV) or not hasattr(report, "duration"):
        return
    path = _module_path(report.nodeid)
    _RECORDED[path] = _RECORDED.get(path, 0.0) + float(report.duration)


# {module path: seconds so far} of this run, when recording (the controller's, under xdist).
_RECORDED: dict[str, float] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(RECORD_MODULE_SECONDS_ENV)
    if not target or getattr(session.config, "workerinput", None) is not None or not _RECORDED:
        return
    ordered = dict(
        sorted(((path, round(seconds, 1)) for path, seconds in _RECORDED.items()), key=lambda kv: kv[0])
    )
    Path(target).write_text(json.dumps(ordered, indent=1) + "\n")


@pytest.hookimpl(optionalhook=True)  # `pytest -p no:xdist` runs without the hook's plugin
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the mDNS modules as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesAndMdns(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = _module_path(nodeid)
            return "mdns" if scope in MDNS_MODULES else scope

    return ModulesAndMdns(config, log)
