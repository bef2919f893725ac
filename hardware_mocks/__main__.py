"""`python -m hardware_mocks` runs the `dockside-mock` command."""

from hardware_mocks.cli import main

main()
