"""The agent over HTTP: the local API, its boundary and credentials, the station page, the server.

May import the running agent and everything under it; only `commands` and `update` import it.
"""
