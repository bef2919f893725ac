"""Records: the audit log of every admin write, and exports of orders, exceptions and the log.

May import `access` (who acted), `storage` and `dockside`.
"""
