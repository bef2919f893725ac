"""`dockside-agent` and its subcommands: enroll, run, doctor, discover, local-token, pair-code.

The top of the agent: may import any agent package.
"""
