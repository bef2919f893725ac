"""`dockside-cloud` and its subcommands: serve, schema, credentials, releases, order import.

The top of the cloud: may import any cloud package.
"""
