"""How the suite runs in parallel (pytest-xdist, `--dist loadgroup`) and in what order.

Each test is its own unit of work, handed to whichever worker is free, except:

- A module with a fixture wider than a test (module or class scope: one stack, one browser, one
  built binary shared by its tests) runs whole on one worker, in its own order, so that fixture
  starts once and its tests keep the order they rely on.
- The modules that speak real mDNS on loopback run on one worker, one after another: each browses
  for every printer announced on loopback, and another module's announcement would be a stranger.

The slowest tests are collected first, so the long ones start at once instead of ending the run on
one worker while the other idles. Without xdist (`pytest tests/e2e/test_scales.py`) only the
order applies.
"""

from __future__ import annotations

import pytest

# Modules that announce or browse zeroconf services on loopback.
MDNS_MODULES = frozenset(
    {
        "tests/edge_agent/devices/test_discovery.py",
        "tests/edge_agent/test_discover.py",
        "tests/hardware_mocks/test_mock_advertising.py",
    }
)
# Run first, slowest first: each of these takes tens of seconds to minutes on real processes.
SLOW_FIRST = ("tests/e2e/", "tests/browser/")


def _module_path(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _shares_a_fixture(item: pytest.Item) -> bool:
    """The test uses a fixture that lives longer than one test but not the whole session."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    scopes = {defs[-1].scope for defs in info.name2fixturedefs.values() if defs}
    return bool(scopes & {"class", "module", "package"})


def _rank(item: pytest.Item) -> int:
    """0 for tests marked slow, 1 for the other end-to-end and browser tests, 2 for the rest."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if _module_path(item).startswith(SLOW_FIRST) else 2


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A module ranks as its slowest test, so its tests stay together (module fixtures start once).
    module_rank: dict[str, int] = {}
    for item in items:
        path = _module_path(item)
        module_rank[path] = min(module_rank.get(path, 2), _rank(item))
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (module_rank[_module_path(item)], order[id(item)]))

    shared = {_module_path(item) for item in items if _shares_a_fixture(item)}
    for item in items:
        path = _module_path(item)
        if path in MDNS_MODULES:
            item.add_marker(pytest.mark.xdist_group("mdns"))
        elif path in shared:
            item.add_marker(pytest.mark.xdist_group(path))
