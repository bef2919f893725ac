"""Fixtures that start mocks in-process on ephemeral ports and always stop them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hardware_mocks import MockPrinter, MockScale


@pytest.fixture
def printer(tmp_path) -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZTEST0001", store=tmp_path / "labels").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def printer_control(printer: MockPrinter) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{printer.control_address}", timeout=5.0) as client:
        yield client


@pytest.fixture
def escpos_printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, language="escpos", model="TM-T88V").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def make_scale(tmp_path) -> Iterator:
    """Start scales of any protocol; all are stopped at the end of the test."""
    started: list[MockScale] = []

    def start(protocol: str = "mt-sics", **options) -> MockScale:
        options.setdefault("control_port", 0)
        options.setdefault("stable_timeout_s", 0.5)
        options.setdefault("interval_s", 0.02)
        scale = MockScale(protocol=protocol, **options).start()
        started.append(scale)
        return scale

    yield start
    for scale in started:
        scale.stop()


@pytest.fixture
def connect() -> Iterator:
    """Open raw printer connections that are closed at the end of the test."""
    from tests.hardware_mocks.mock_peers import RawPrinterSocket

    opened: list[RawPrinterSocket] = []

    def open_connection(port: int) -> RawPrinterSocket:
        host = RawPrinterSocket(port)
        opened.append(host)
        return host

    yield open_connection
    for host in opened:
        host.close()
