"""HttpLimits from the environment: defaults, overrides, and a typo refused with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockside.http_limits import HttpLimits, raw_error_response


def test_the_defaults_bound_every_wait() -> None:
    limits = HttpLimits.from_env({})
    assert limits == HttpLimits()
    assert 0 < limits.header_timeout_s <= 30
    assert 0 < limits.body_idle_timeout_s <= 30
    assert limits.max_connections >= 1000  # a thousand stalled sockets must not lock out the rest


def test_the_environment_overrides_them() -> None:
    limits = HttpLimits.from_env(
        {
            "DOCKSIDE_HTTP_HEADER_TIMEOUT_S": "2.5",
            "DOCKSIDE_HTTP_BODY_TIMEOUT_S": " 4 ",
            "DOCKSIDE_HTTP_MAX_CONNECTIONS": "64",
        }
    )
    assert (limits.header_timeout_s, limits.body_idle_timeout_s, limits.max_connections) == (2.5, 4.0, 64)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DOCKSIDE_HTTP_HEADER_TIMEOUT_S", "ten"),
        ("DOCKSIDE_HTTP_BODY_TIMEOUT_S", "0"),
        ("DOCKSIDE_HTTP_BODY_TIMEOUT_S", "-1"),
        ("DOCKSIDE_HTTP_MAX_CONNECTIONS", "2.5"),
        ("DOCKSIDE_HTTP_MAX_CONNECTIONS", "0"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match="DOCKSIDE_HTTP_"):
        HttpLimits.from_env({variable: value})


def test_serve_refuses_a_bad_value_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKSIDE_HTTP_BODY_TIMEOUT_S": "soon"}
    command = [
        sys.executable,
        "-m",
        "cloud.commands.cli",
        "serve",
        "--http",
        "127.0.0.1:0",
        "--grpc",
        "127.0.0.1:0",
    ]
    result = subprocess.run(
        [*command, "--database-url", f"sqlite:///{tmp_path / 'cloud.db'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 1
    assert "DOCKSIDE_HTTP_BODY_TIMEOUT_S is 'soon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_raw_refusal_is_a_whole_response_in_the_error_shape() -> None:
    reply = raw_error_response(503, "Service Unavailable", "server_busy", "retry")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert body == b'{"error": {"code": "server_busy", "message": "retry"}}'
