"""How the suite runs in parallel (pytest-xdist, `--dist loadfile`) and in what order.

Each test module is one unit of work, handed whole to whichever worker is free, so a module
whose tests share a fixture (one stack, one browser, the built binary) starts it once and keeps
its order. The modules that speak real mDNS on loopback form a single unit, run one after
another: each browses for every printer announced on loopback, and another module's
announcement would be a stranger. (Not `--dist loadgroup` with xdist_group marks: with pytest
9.2 xdist 3.8 can no longer tag the test ids with their group, and the marks are ignored.)

The slowest modules are collected first, so the long ones start at once instead of ending the
run on one worker while the other idles (`--no-loadscope-reorder` keeps that order). Without
xdist (`pytest tests/e2e/test_scales.py`) only the order applies.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.fernet import Fernet

# TOTP and webhook secrets are sealed with this key (cloud/storage/sealed_secrets.py) in the test process
# and every cloud it starts; a test of a missing key removes it with monkeypatch.
os.environ.setdefault("DOCKSIDE_SECRET_KEY", Fernet.generate_key().decode("ascii"))

# Modules that announce or browse zeroconf services on loopback.
MDNS_MODULES = frozenset(
    {
        "tests/edge_agent/devices/test_discovery.py",
        "tests/edge_agent/test_discover.py",
        "tests/hardware_mocks/test_mock_advertising.py",
    }
)
# Run first: each of these takes tens of seconds to minutes on real processes.
SLOW_FIRST = ("tests/e2e/", "tests/browser/")


def _module_path(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _rank(item: pytest.Item) -> int:
    """0 for tests marked slow, 1 for the other end-to-end and browser tests, 2 for the rest."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if _module_path(item.nodeid).startswith(SLOW_FIRST) else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A module ranks as its slowest test, so its tests stay together (module fixtures start once).
    module_rank: dict[str, int] = {}
    for item in items:
        path = _module_path(item.nodeid)
        module_rank[path] = min(module_rank.get(path, 2), _rank(item))
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (module_rank[_module_path(item.nodeid)], order[id(item)]))


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
