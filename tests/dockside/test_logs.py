"""Structured logs: JSON lines with order and job ids, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time
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


class _SlowSink(io.StringIO):
    """A log sink that blocks every write until released, as a stalled journald or full pipe does."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(30)
        return super().write(text)


def test_background_logging_never_waits_for_the_sink_and_keeps_ids_and_masking() -> None:
    sink = _SlowSink()
    handler = configure_logging("info", "json", sink, background=True)
    log = logging.getLogger("dockside.test")
    try:
        args = ["ZD421"]
        with log_context(station="S1", order_ref="BG-0001"):
            log.warning("printer %s is out of labels (%s)", args[0], SECRETS[2])
        args[0] = "changed later"  # the line reads as it did at the call
        log.info("after the block")
        # Both calls returned while the sink was still blocked: nothing is written yet.
        assert sink.getvalue() == ""
        sink.release.set()
        deadline = time.monotonic() + 30
        while sink.getvalue().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    first, second = lines(sink)
    assert (first["station"], first["order_ref"]) == ("S1", "BG-0001")
    assert first["message"] == "printer ZD421 is out of labels (dsa_***)"
    assert "station" not in second
    assert isinstance(handler, logging.StreamHandler)


def test_background_logging_writes_what_is_queued_when_the_process_exits(tmp_path) -> None:
    script = (
        "import logging, sys\n"
        "from dockside.logs import configure_logging\n"
        "configure_logging('info', 'text', sys.stderr, background=True)\n"
        "for n in range(500):\n"
        "    logging.getLogger('x').info('line %d', n)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    written = [line for line in done.stderr.splitlines() if " INFO x: line " in line]
    assert [line.rsplit(" ", 1)[1] for line in written] == [str(n) for n in range(500)]
