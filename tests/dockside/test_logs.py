"""Structured logs: JSON lines with order and job ids, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dockside.logs import configure_logging, log_context, redact


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_carries_the_ids_passed_or_bound(captured: io.StringIO) -> None:
    log = logging.getLogger("dockside.test")
    log.info("label printed", extra={"order_ref": "DEMO-0001", "job_id": "abc123"})
    with log_context(station="S1", order_ref="DEMO-0002"):
        log.warning("printer %s is out of labels", "ZD421")
    log.info("after the block")
    first, second, third = lines(captured)
    assert first["order_ref"] == "DEMO-0001"
    assert first["job_id"] == "abc123"
    assert first["level"] == "info"
    assert second == {
        **second,
        "station": "S1",
        "order_ref": "DEMO-0002",
        "message": "printer ZD421 is out of labels",
    }
    assert "station" not in third
    assert str(first["time"]).endswith("+00:00")


SECRETS = [
    "dsk_9f8e7d6c5b4a39281706f5e4",
    "dse_AbCdEfGhIjKlMnOp-qrs",
    "dsa_0123456789abcdefXYZ_",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_secrets_never_reach_the_log(captured: io.StringIO, secret: str) -> None:
    log = logging.getLogger("dockside.test")
    log.info("enrolling with %s", secret)
    log.warning(f"header was Authorization: Bearer {secret}")
    try:
        raise ValueError(f"token {secret} refused")
    except ValueError:
        log.exception("call failed")
    text = captured.getvalue()
    assert secret not in text
    assert secret[-8:] not in text
    assert f"{secret[:4]}***" in text


def test_text_format_is_redacted_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    try:
        logging.getLogger("x").info("Bearer abcdefghijklmnop")
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    assert "abcdefghijklmnop" not in stream.getvalue()
    assert "Bearer ***" in stream.getvalue()


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "order DEMO-0001 packed at S1 by job 3f2a (dsk_ prefix explained in docs)"
    assert redact(text) == text
