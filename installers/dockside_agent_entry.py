"""The one-file binary's entry point: the same `dockside-agent` command the wheel installs."""

from edge_agent.commands.cli import main

if __name__ == "__main__":
    main(prog_name="dockside-agent")
