"""The fleet: warehouses and their stations, enrolled agents, and agent releases.

May import `access` (credentials), `storage` and `dockside`.
"""
