"""`dockside-cloud` as a person or a launcher runs it: help everywhere, init-db, create-token, and
`serve` for real on ephemeral ports with a ready file, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import grpc
import httpx
import pytest
from click.testing import CliRunner

from cloud.commands.cli import main
from dockside.v1 import sync_pb2, sync_pb2_grpc

CLI = str(Path(sys.executable).with_name("dockside-cloud"))


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stderr.read()!r}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"no ready file after {timeout} s")
        time.sleep(0.02)
    ready: dict[str, str] = json.loads(path.read_text())
    return ready


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    return [(name, command) for name, command in group.commands.items()]


def test_every_command_and_option_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    assert main.help
    for name, command in _commands(main):
        assert command.help, f"{name} has no help"
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help"


def test_init_db_and_create_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["init-db", "--database-url", url]).exit_code == 0
    result = runner.invoke(main, ["create-token", "--role", "admin", "--name", "demo", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("dsk_")
    wrong_role = runner.invoke(main, ["create-token", "--role", "root", "--name", "x", "--database-url", url])
    assert wrong_role.exit_code == 2
    assert "root" in wrong_role.output
    no_tenant = runner.invoke(
        main, ["create-token", "--name", "x", "--tenant", "acme", "--database-url", url]
    )
    assert no_tenant.exit_code == 1
    assert "no tenant 'acme'" in no_tenant.output


def test_the_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    result = CliRunner().invoke(main, ["init-db"], env={"DOCKSIDE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env.db").exists()


def test_serve_refuses_a_bad_address() -> None:
    result = CliRunner().invoke(main, ["serve", "--http", "localhost"])
    assert result.exit_code == 2
    assert "HOST:PORT" in result.output


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    ready_file = tmp_path / "run" / "ready.json"
    process = subprocess.Popen(
        [
            CLI,
            "serve",
            "--http",
            "127.0.0.1:0",
            "--grpc",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--ready-file",
            str(ready_file),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DOCKSIDE_DATABASE_URL": ""},
    )
    try:
        yield process, ready_file, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_listens_on_free_ports_and_stops_on_a_signal(
    served: tuple[subprocess.Popen[bytes], Path, str], stop_signal: signal.Signals
) -> None:
    process, ready_file, url = served
    ready = _wait_for_file(ready_file, process)
    assert set(ready) == {"http", "grpc"}
    assert not ready["http"].endswith(":0")
    assert not ready["grpc"].endswith(":0")
    token = subprocess.run(
        [CLI, "create-token", "--role", "admin", "--name", "demo", "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    with httpx.Client(base_url=f"http://{ready['http']}", timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        created = client.post(
            "/api/v1/warehouses", json={"code": "WH1"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201
    with grpc.insecure_channel(ready["grpc"]) as channel:
        stub = sync_pb2_grpc.SyncStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Enroll(sync_pb2.EnrollRequest(token="dse_nope"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # A Watch stream that is open at shutdown must not hold the server up.
        with httpx.Client(base_url=f"http://{ready['http']}", timeout=10) as client:
            enroll = client.post(
                "/api/v1/warehouses/WH1/enrollment-tokens",
                json={},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["token"]
        agent = stub.Enroll(sync_pb2.EnrollRequest(token=enroll), timeout=10)
        stream = stub.Watch(
            sync_pb2.WatchRequest(after_revision=0),
            metadata=(("authorization", f"Bearer {agent.credential}"),),
            timeout=3600,  # far past every deadline below: only the server can end this stream
        )
        assert next(stream).HasField("snapshot_begin")
        process.send_signal(stop_signal)
        # The server ends the open stream itself and exits (a hung shutdown fails this deadline).
        assert process.wait(timeout=60) == 0
        try:
            for _ in stream:
                pass
            ended = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            ended = exc.code()
        assert ended != grpc.StatusCode.DEADLINE_EXCEEDED
    assert not ready_file.exists()
    assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]


@pytest.mark.parametrize("which", ["--http", "--grpc"])
def test_serve_on_a_taken_port_fails_clearly(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        addresses = {"--http": "127.0.0.1:0", "--grpc": "127.0.0.1:0", which: busy}
        result = subprocess.run(
            [
                CLI,
                "serve",
                *(part for pair in addresses.items() for part in pair),
                "--database-url",
                f"sqlite:///{tmp_path / 'cloud.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"{busy}" in result.stderr
    assert "pick another port" in result.stderr
    assert "Traceback" not in result.stderr
