"""`dockside-agent` as an operator runs it: a real subprocess against a real gRPC Sync server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from edge_agent import __version__
from edge_agent.commands.cli import main
from edge_agent.store.data_dir import default_data_dir, resolve_data_dir
from edge_agent.store.database import Store
from edge_agent.sync import MemoryTransport
from edge_agent.sync.identity import load_identity
from tests.edge_agent.agent_harness import order_body
from tests.edge_agent.grpc_cloud import ThreadedGrpcCloud
from tests.edge_agent.waiting import wait_until

AGENT = str(Path(sys.executable).parent / "dockside-agent")


@pytest.fixture
def cloud() -> MemoryTransport:
    memory = MemoryTransport(warehouse="WH1")
    memory.add_token("good-token", "agent-7")
    memory.publish("warehouse", "WH1", {"code": "WH1", "ship_from": {"name": "Harbour"}})
    # A whole order: the agent refuses to show or pack a partial one (409 order_unusable).
    memory.publish("order", "CLI-1", order_body("CLI-1"))
    return memory


@pytest.fixture
def server(cloud: MemoryTransport) -> Iterator[ThreadedGrpcCloud]:
    threaded = ThreadedGrpcCloud(cloud).start()
    yield threaded
    threaded.stop()


def _agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "DOCKSIDE_AGENT_DATA_DIR"} | (env or {})
    return subprocess.run(
        [AGENT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=environment,
    )


def test_every_command_and_option_has_help() -> None:
    assert main.help
    for name, command in main.commands.items():  # type: ignore[attr-defined]
        assert command.help, f"command {name} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help"
    runner = CliRunner()
    for name in main.commands:  # type: ignore[attr-defined]
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
    installed = _agent("--help")  # the console script itself
    assert installed.returncode == 0, installed.stderr
    assert "enroll" in installed.stdout


def test_enroll_stores_the_identity(server: ThreadedGrpcCloud, tmp_path: Path) -> None:
    result = _agent(
        "enroll", "--cloud", server.target, "--token", "good-token", "--data-dir", str(tmp_path / "a")
    )

    assert result.returncode == 0, result.stderr
    assert "agent-7" in result.stdout
    store = Store.open(tmp_path / "a")
    try:
        identity = load_identity(store)
    finally:
        store.close()
    assert identity is not None
    assert (identity.agent_id, identity.warehouse, identity.cloud) == ("agent-7", "WH1", server.target)
    assert identity.credential
    assert identity.credential not in result.stdout + result.stderr


def test_a_bad_or_replayed_token_is_refused_clearly(server: ThreadedGrpcCloud, tmp_path: Path) -> None:
    bad = _agent("enroll", "--cloud", server.target, "--token", "nope", "--data-dir", str(tmp_path / "bad"))
    first = _agent(
        "enroll", "--cloud", server.target, "--token", "good-token", "--data-dir", str(tmp_path / "one")
    )
    replay = _agent(
        "enroll", "--cloud", server.target, "--token", "good-token", "--data-dir", str(tmp_path / "two")
    )

    assert first.returncode == 0, first.stderr
    for refused in (bad, replay):
        assert refused.returncode == 2
        assert "enrollment token is not valid" in refused.stderr
        assert "Traceback" not in refused.stderr + refused.stdout


def test_enrolling_an_enrolled_data_dir_is_refused(server: ThreadedGrpcCloud, tmp_path: Path) -> None:
    folder = str(tmp_path / "a")
    assert (
        _agent("enroll", "--cloud", server.target, "--token", "good-token", "--data-dir", folder).returncode
        == 0
    )
    server.cloud.add_token("second-token", "agent-8")

    again = _agent("enroll", "--cloud", server.target, "--token", "second-token", "--data-dir", folder)

    assert again.returncode == 1
    assert "already enrolled as agent agent-7" in again.stderr


def test_an_unreachable_cloud_or_a_bad_address_is_a_clear_error(tmp_path: Path) -> None:
    down = _agent("enroll", "--cloud", "127.0.0.1:1", "--token", "t", "--data-dir", str(tmp_path / "a"))
    garbled = _agent("enroll", "--cloud", "no-port-here", "--token", "t", "--data-dir", str(tmp_path / "b"))

    assert down.returncode == 1
    assert "cannot reach the cloud at 127.0.0.1:1" in down.stderr
    assert garbled.returncode == 1
    assert "HOST:PORT" in garbled.stderr
    assert "Traceback" not in down.stderr + garbled.stderr


def test_run_serves_syncs_and_stops_cleanly_on_sigterm(server: ThreadedGrpcCloud, tmp_path: Path) -> None:
    folder, ready = tmp_path / "agent", tmp_path / "ready.json"
    assert (
        _agent(
            "enroll", "--cloud", server.target, "--token", "good-token", "--data-dir", str(folder)
        ).returncode
        == 0
    )
    log = (tmp_path / "agent.log").open("w")
    process = subprocess.Popen(
        [AGENT, "run", "--data-dir", str(folder), "--http", "127.0.0.1:0", "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: ready.exists() or process.poll() is not None, timeout=30, what="the ready file")
        assert process.poll() is None, (tmp_path / "agent.log").read_text()
        address = json.loads(ready.read_text())["http"]
        token = _agent("local-token", "--data-dir", str(folder)).stdout.strip()
        headers = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://{address}", headers=headers, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok", "version": __version__}
            assert httpx.get(f"http://{address}/api/v1/status").status_code == 401
            wait_until(lambda: client.get("/api/v1/status").json()["revision"] == 2, timeout=20, what="sync")
            status = client.get("/api/v1/status").json()
            assert status["online"] is True
            assert status["agent_id"] == "agent-7"
            assert client.get("/api/v1/orders/CLI-1").status_code == 200
        # A backup is taken beside the running agent; a restore is refused while it runs.
        kept = tmp_path / "live-backup.db"
        backed = _agent("backup", str(kept), "--data-dir", str(folder))
        assert backed.returncode == 0, backed.stderr
        refused = _agent("restore", str(kept), "--data-dir", str(folder))
        assert refused.returncode == 1
        assert "an agent is running on the data dir" in refused.stderr
        second = _agent("run", "--data-dir", str(folder), "--http", "127.0.0.1:0")
        assert second.returncode == 1
        assert "an agent is running on the data dir" in second.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert not ready.exists(), "the ready file is removed at a clean exit"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
    assert "Traceback" not in (tmp_path / "agent.log").read_text()
    assert "cred-agent-7" not in (tmp_path / "agent.log").read_text(), "the credential must never be logged"

    restored = _agent("restore", str(kept), "--data-dir", str(folder))
    assert restored.returncode == 0, restored.stderr
    status = _agent("status", "--json", "--data-dir", str(folder))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["agent_id"] == "agent-7"
    assert report["revision"] == 2
    assert report["cached"]["orders"] == 1


def test_run_before_enrolling_says_how_to_enroll(tmp_path: Path) -> None:
    result = _agent("run", "--data-dir", str(tmp_path / "empty"), "--http", "127.0.0.1:0")

    assert result.returncode == 1
    assert "not enrolled" in result.stderr
    assert "dockside-agent enroll" in result.stderr


def test_status_without_an_agent_is_a_clear_error(tmp_path: Path) -> None:
    result = _agent("status", env={"DOCKSIDE_AGENT_DATA_DIR": str(tmp_path / "nothing")})

    assert result.returncode == 1
    assert "there is no agent in" in result.stderr
    assert str(tmp_path / "nothing") in result.stderr
    assert not (tmp_path / "nothing").exists(), "status must not create a data dir"


def test_the_data_dir_comes_from_the_option_then_the_environment_then_the_os() -> None:
    env = {"DOCKSIDE_AGENT_DATA_DIR": "/srv/agent", "HOME": "/home/packer"}
    assert resolve_data_dir("/opt/d", env) == Path("/opt/d")
    assert resolve_data_dir(None, env) == Path("/srv/agent")
    assert resolve_data_dir(None, {"HOME": "/home/packer"}) == Path(
        "/home/packer/.local/share/dockside-agent"
    )
    assert default_data_dir({"HOME": "/h", "XDG_DATA_HOME": "/x"}, "linux") == Path("/x/dockside-agent")
    assert default_data_dir({"HOME": "/Users/p"}, "darwin") == Path(
        "/Users/p/Library/Application Support/Dockside Agent"
    )
    assert default_data_dir({"LOCALAPPDATA": "C:/Users/p/AppData/Local"}, "win32") == Path(
        "C:/Users/p/AppData/Local/Dockside/Agent"
    )
