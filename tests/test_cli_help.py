"""Every command of every Dockside CLI has help: the command itself and each of its options."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from cloud.commands.cli import main as cloud_main
from edge_agent.commands.cli import main as agent_main
from hardware_mocks.cli import main as mock_main

CLIS = {"dockside-agent": agent_main, "dockside-cloud": cloud_main, "dockside-mock": mock_main}


def _commands(name: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
    yield name, command
    if isinstance(command, click.Group):
        for sub_name, sub in sorted(command.commands.items()):
            yield from _commands(f"{name} {sub_name}", sub)


ALL = [pair for name, cli in CLIS.items() for pair in _commands(name, cli)]


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_the_command_and_each_option_have_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"`{path}` has no help: give its function a docstring"
    missing = [
        param.name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not missing, f"`{path}` has options without help: {missing}"
    # Arguments are described in the command's help text, by their upper-case name.
    for param in command.params:
        if isinstance(param, click.Argument):
            assert (param.name or "").upper() in (command.help or ""), (
                f"`{path}` does not describe its argument {(param.name or '').upper()} in its help"
            )


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_help_prints(path: str, command: click.Command) -> None:
    words = path.split()
    result = CliRunner().invoke(CLIS[words[0]], [*words[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


# Commands that only read and report: each offers --json for scripts and monitoring.
READ_COMMANDS = [
    "dockside-agent status",
    "dockside-agent doctor",
    "dockside-agent discover",
    "dockside-cloud import-orders",
]


@pytest.mark.parametrize("path", READ_COMMANDS)
def test_read_commands_offer_json(path: str) -> None:
    command = dict(ALL)[path]
    assert any(isinstance(p, click.Option) and "--json" in p.opts for p in command.params), (
        f"`{path}` reports something but has no --json"
    )
