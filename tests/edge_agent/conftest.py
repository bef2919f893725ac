"""Fixtures for the edge agent's tests: a store in a temporary data dir, a mock scale, and async helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.store.database import Store
from hardware_mocks import MockScale


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "agent"


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    opened = Store.open(data_dir)
    yield opened
    opened.close()


@pytest.fixture
def scale() -> Iterator[MockScale]:
    """A mock scale on a pty, quick to settle, holding a 1,234 g parcel."""
    mock = MockScale(control_port=0, stable_timeout_s=0.3, interval_s=0.02).start()
    mock.set_weight(1234, stable=True)
    try:
        yield mock
    finally:
        mock.stop()
