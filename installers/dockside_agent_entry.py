"""The one-file binary's entry point: the same `dockside-agent` command the wheel installs.

The agent draws carrier labels in a worker process started from this same binary
(`edge_agent.printing.label_renderer`, multiprocessing's `spawn`): `freeze_support()` makes that
start run the worker instead of the command line, and comes before the agent's own imports so
that the worker does not pay for them.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from edge_agent.commands.cli import main

    main(prog_name="dockside-agent")
