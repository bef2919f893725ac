"""`python -m edge_agent` runs the agent's command line (as the frozen installer does)."""

from edge_agent.commands.cli import main

main()
