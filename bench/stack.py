"""Start a whole Dockside stack as real processes: cloud, mock printer, mock scale, agents.

Used by the end-to-end tests, the benchmarks and `make demo`. Every part runs through its real
console script on real sockets and a real pty; this module only wires them together through
their public command lines and APIs, as an operator would: the agent's local API is called with
the token `dockside-agent local-token` prints, as a program on the agent's PC calls it.

The two one-shot commands every stack needs, the admin token (`dockside-cloud create-token`) and
the agent's local token (`dockside-agent local-token`), run in this process (`Stack.command`):
the same click commands with the same arguments, without the seconds a console script spends
importing the whole cloud or agent before it reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
from click.testing import CliRunner
from cryptography.fernet import Fernet

from cloud.commands.cli import main as cloud_cli
from edge_agent.commands.cli import main as agent_cli

__all__ = ["Process", "Stack", "StackError", "restartable_address", "running_stack", "wait_for"]

_BIN = Path(sys.executable).parent
# The console scripts whose commands `Stack.command` runs in this process.
_IN_PROCESS: dict[str, click.Group] = {"dockside-cloud": cloud_cli, "dockside-agent": agent_cli}


class StackError(RuntimeError):
    """A part of the stack did not start or answered unexpectedly."""


def restartable_address(host: str = "127.0.0.1") -> str:
    """A free HOST:PORT for a server that is stopped and started again on the same address.

    The port lies below the system's ephemeral range, so while the server is down no port-0
    listener and no outgoing connection of another test or program can be handed it; a port
    from the ephemeral range was taken that way during a minute-long outage, and the restart
    failed with "address already in use".
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1024, low - 12_000), low))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        return f"{host}:{port}"
    raise StackError(f"no free port below {low} on {host}: free one or widen the search")


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:  # a condition that raises is simply not met yet
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class Process:
    """One started part: its subprocess, log file and what it reported when ready."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> int | None:
        """Stop it: SIGTERM and wait (or SIGKILL at once with `kill`)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        return self.popen.returncode


class Stack:
    """A set of Dockside processes sharing one working folder; stop() ends them all."""

    def __init__(self, root: Path, *, database_url: str | None = None, env: Mapping[str, str] | None = None):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.database_url = database_url or f"sqlite:///{self.root / 'cloud.db'}"
        self.env = {**os.environ, **(env or {})}
        self.env.pop("DOCKSIDE_AGENT_DATA_DIR", None)
        if not self.database_url.startswith("sqlite"):
            # Clouds on one PostgreSQL must share the key that seals TOTP and webhook secrets (a
            # SQLite cloud keeps its own beside its database): see cloud/storage/sealed_secrets.py.
            self.env.setdefault("DOCKSIDE_SECRET_KEY", Fernet.generate_key().decode("ascii"))
        self.processes: dict[str, Process] = {}
        self.admin_token = ""
        self._agent_tokens: dict[str, str] = {}
        self._admin: httpx.Client | None = None
        # One client for every mock control call: a new one per call loads the CA bundle each time.
        self._control: httpx.Client | None = None

    # -- processes -------------------------------------------------------------------------

    def spawn(self, name: str, command: Sequence[str], *, ready_timeout: float = 30.0) -> Process:
        """Run a console script with `--ready-file` and wait until it reports ready."""
        ready_file = self.root / f"{name}.ready.json"
        ready_file.unlink(missing_ok=True)
        log_path = self.root / "logs" / f"{name}.log"
        executable = shutil.which(command[0], path=str(_BIN)) or command[0]
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [executable, *command[1:], "--ready-file", str(ready_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.root,
            )
        process = Process(name, popen, log_path)
        self.processes[name] = process

        def ready() -> dict[str, Any] | None:
            if popen.poll() is not None:
                raise StackError(f"{name} exited with {popen.returncode}:\n{process.log_tail()}")
            if ready_file.exists():
                return dict(json.loads(ready_file.read_text()))
            return None

        try:
            process.ready = wait_for(ready, timeout=ready_timeout, what=f"{name} to be ready")
        except TimeoutError as exc:
            process.stop(kill=True)
            raise StackError(f"{exc}\n{process.log_tail()}") from exc
        return process

    def run(self, command: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> str:
        """Run a one-shot console command and return its stdout."""
        executable = shutil.which(command[0], path=str(_BIN)) or command[0]
        result = subprocess.run(
            [executable, *command[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout if check else result.stdout + result.stderr

    def command(self, command: Sequence[str]) -> str:
        """Run a one-shot command of `dockside-cloud` or `dockside-agent` in this process; its stdout.

        What `run` does minus the new process, whose start-up (imports) costs seconds on a busy
        machine. For the commands the stack itself needs; a test of a command's exit status,
        stderr or process runs it with `run`.
        """
        changed = {key: value for key, value in self.env.items() if os.environ.get(key) != value}
        removed = {key: None for key in os.environ if key not in self.env}
        result = CliRunner().invoke(
            _IN_PROCESS[command[0]], list(command[1:]), env={**changed, **removed}, catch_exceptions=False
        )
        if result.exit_code != 0:
            raise StackError(f"{' '.join(command)} failed ({result.exit_code}):\n{result.output}")
        return result.stdout

    def stop(self) -> None:
        """Stop every process this stack started, newest first."""
        for client in (self._admin, self._control):
            if client is not None:
                client.close()
        self._admin = self._control = None
        for process in reversed(list(self.processes.values())):
            process.stop()

    # -- the parts -------------------------------------------------------------------------

    def start_cloud(
        self,
        *,
        http: str = "127.0.0.1:0",
        grpc: str = "127.0.0.1:0",
        name: str = "cloud",
        extra: Sequence[str] = (),
    ) -> Process:
        """Start (or restart) the cloud on this stack's database; on first start, mint an admin token.

        `extra` goes to `serve` as is, e.g. ("--tls-cert", ..., "--tls-key", ...)."""
        process = self.spawn(
            name,
            [
                "dockside-cloud",
                "serve",
                "--http",
                http,
                "--grpc",
                grpc,
                "--database-url",
                self.database_url,
                *extra,
            ],
        )
        if not self.admin_token:
            out = self.command(
                [
                    "dockside-cloud",
                    "create-token",
                    "--role",
                    "admin",
                    "--name",
                    "stack",
                    "--database-url",
                    self.database_url,
                ]
            )
            self.admin_token = out.strip().splitlines()[-1].strip()
        if self._admin is not None:
            self._admin.close()
        self._admin = httpx.Client(
            base_url=f"http://{process.ready['http']}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30.0,
        )
        return process

    @property
    def cloud(self) -> Process:
        return self.processes["cloud"]

    @property
    def admin(self) -> httpx.Client:
        """An HTTP client for the cloud's admin API, authenticated as admin."""
        if self._admin is None:
            raise StackError("the cloud is not started")
        return self._admin

    def start_printer(
        self,
        name: str = "printer",
        *,
        port: int = 0,
        control_port: int = 0,
        serial: str | None = None,
        language: str = "zpl",
        store: Path | None = None,
    ) -> Process:
        command = [
            "dockside-mock",
            "printer",
            "--port",
            str(port),
            "--control-port",
            str(control_port),
            "--language",
            language,
        ]
        if serial:
            command += ["--serial", serial]
        if store:
            command += ["--store", str(store)]
        return self.spawn(name, command)

    def start_scale(
        self,
        name: str = "scale",
        *,
        protocol: str = "mt-sics",
        control_port: int = 0,
        link: Path | None = None,
    ) -> Process:
        command = ["dockside-mock", "scale", "--protocol", protocol, "--control-port", str(control_port)]
        if link:
            command += ["--link", str(link)]
        return self.spawn(name, command)

    def agent_dir(self, name: str) -> Path:
        return self.root / name

    def enroll_agent(self, warehouse: str, name: str = "agent", *, extra: Sequence[str] = ()) -> None:
        token = self.admin_call("POST", f"/api/v1/warehouses/{warehouse}/enrollment-tokens", {"ttl_s": 600})[
            "token"
        ]
        self.run(
            [
                "dockside-agent",
                "enroll",
                "--cloud",
                self.cloud.ready["grpc"],
                "--token",
                token,
                "--data-dir",
                str(self.agent_dir(name)),
                *extra,
            ]
        )

    def start_agent(
        self, name: str = "agent", *, http: str = "127.0.0.1:0", extra: Sequence[str] = ()
    ) -> Process:
        """Start (or restart) an enrolled agent; `extra` goes to `run` as is, e.g. ("--scale-wait", "0.5")."""
        return self.spawn(
            name,
            ["dockside-agent", "run", "--data-dir", str(self.agent_dir(name)), "--http", http, *extra],
        )

    # -- API conveniences ------------------------------------------------------------------

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the admin API and return its JSON, failing loudly on an error answer."""
        response = self.admin.request(method, path, json=body)
        if response.status_code >= 400:
            raise StackError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def control(self, part: str, method: str, path: str, body: Any = None) -> Any:
        """Call a mock's control API."""
        if self._control is None:
            self._control = httpx.Client(timeout=10)
        response = self._control.request(
            method, f"http://{self.processes[part].ready['control']}{path}", json=body
        )
        if response.status_code >= 400:
            raise StackError(f"{part} {method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def agent_url(self, name: str = "agent") -> str:
        host, port = str(self.processes[name].ready["http"]).rsplit(":", 1)
        if host in ("0.0.0.0", "[::]"):  # listening on every interface: call it on this PC's loopback
            host = "127.0.0.1"
        return f"http://{host}:{port}"

    def agent_token(self, name: str = "agent", *, refresh: bool = False) -> str:
        """The agent's local API token, as `dockside-agent local-token` prints it (asked once)."""
        if refresh or name not in self._agent_tokens:
            out = self.command(["dockside-agent", "local-token", "--data-dir", str(self.agent_dir(name))])
            self._agent_tokens[name] = out.strip().splitlines()[-1].strip()
        return self._agent_tokens[name]

    def agent_headers(self, name: str = "agent") -> dict[str, str]:
        """The header a local program sends to the agent's API."""
        return {"Authorization": f"Bearer {self.agent_token(name)}"}

    def agent_client(self, name: str = "agent", *, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for the agent's local API, authenticated with its local token (close it)."""
        return httpx.Client(base_url=self.agent_url(name), headers=self.agent_headers(name), timeout=timeout)


@contextmanager
def running_stack(root: Path, **kwargs: Any) -> Iterator[Stack]:
    """A Stack that is stopped however the block ends."""
    stack = Stack(root, **kwargs)
    try:
        yield stack
    finally:
        stack.stop()
