"""`dockside-mock` as a launcher runs it: a real subprocess, ready files, signals, help text."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest
import serial
from click.testing import CliRunner

from hardware_mocks import MockPrinter, MockScale
from hardware_mocks.cli import main
from tests.hardware_mocks.mock_peers import label, wait_until

SCRIPT = Path(sys.executable).with_name("dockside-mock")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "hardware_mocks"]


@pytest.fixture
def run_mock():
    """Start `dockside-mock ...` subprocesses; each is stopped (SIGTERM, then kill) at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*arguments: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*COMMAND, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def read_ready(path: Path, process: subprocess.Popen[str]) -> dict:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"mock exited early: {process.stderr.read() if process.stderr else ''}")
        return path.exists()

    wait_until(ready, timeout_s=20, what=f"ready file {path}")
    return json.loads(path.read_text())


def test_every_command_and_option_has_help():
    assert main.help
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help"
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                assert parameter.help, f"{name} {parameter.opts} has no help"
    result = CliRunner().invoke(main, ["printer", "--help"])
    assert result.exit_code == 0
    assert "--ready-file" in result.output
    assert "--advertise / --no-advertise" in result.output


def test_printer_subprocess_ready_file_label_and_sigterm(run_mock, tmp_path):
    ready_file = tmp_path / "printer.json"
    store = tmp_path / "labels"
    process = run_mock(
        "printer", "--port", "0", "--control-port", "0", "--serial", "ZD-CLI-1",
        "--store", str(store), "--ready-file", str(ready_file),
    )  # fmt: skip
    ready = read_ready(ready_file, process)
    assert ready["serial"] == "ZD-CLI-1"
    assert ready["language"] == "zpl"
    assert ready["control"].startswith("127.0.0.1:")
    assert process.stdout is not None
    line = process.stdout.readline()
    assert str(ready["port"]) in line
    assert ready["control"] in line
    with socket.create_connection(("127.0.0.1", ready["port"])) as host:
        host.sendall(label("from the cli"))
    labels = wait_until(
        lambda: httpx.get(f"http://{ready['control']}/labels").json(), timeout_s=5, what="label via control"
    )
    assert labels[0]["fields"] == ["from the cli"]
    stored = wait_until(lambda: (store / "0001.zpl").exists() and (store / "0001.zpl"), what="stored label")
    assert stored.read_bytes() == label("from the cli")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", ready["port"]), timeout=2).close()


def test_scale_subprocess_ready_file_pty_and_link(run_mock, tmp_path):
    ready_file = tmp_path / "scale.json"
    link = tmp_path / "ttyScale0"
    process = run_mock(
        "scale", "--protocol", "mt-sics", "--control-port", "0", "--link", str(link),
        "--ready-file", str(ready_file),
    )  # fmt: skip
    ready = read_ready(ready_file, process)
    assert ready["protocol"] == "mt-sics"
    assert ready["link"] == str(link)
    assert os.readlink(link) == ready["pty"]
    assert process.stdout is not None
    assert ready["pty"] in process.stdout.readline()
    httpx.post(f"http://{ready['control']}/weight", json={"grams": 2500, "stable": True})
    with serial.Serial(str(link), 9600, timeout=2) as port:
        port.write(b"S\r\n")
        assert port.read_until(b"\r\n") == b"S S     2500.0 g\r\n"
    assert httpx.get(f"http://{ready['control']}/").json()["pty"] == ready["pty"]
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0
    assert not link.exists()


def test_busy_port_and_bad_options_fail_clearly(run_mock, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = run_mock("printer", "--port", str(port), "--control-port", "0")
        assert process.wait(20) == 1
        assert process.stderr is not None
        assert "could not listen" in process.stderr.read()
    result = CliRunner().invoke(main, ["printer", "--language", "pcl"])
    assert result.exit_code == 2
    assert "pcl" in result.output
    result = CliRunner().invoke(main, ["scale", "--protocol", "toledo-8217", "--units", "g"])
    assert result.exit_code == 2
    assert "toledo-8217" in result.output


def test_a_busy_control_port_leaves_neither_the_print_port_nor_the_pty_open(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        print_port = free.getsockname()[1]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        control_port = busy.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            MockPrinter(port=print_port, control_port=control_port).start()
        with socket.socket() as again:
            again.bind(("127.0.0.1", print_port))  # the failed printer let go of its print port
        link = tmp_path / "ttyScale"
        with pytest.raises(OSError, match="in use"):
            MockScale(control_port=control_port, link=link).start()
        assert not link.is_symlink()  # and the failed scale closed its pty and removed the link
