"""The agent's SQLite store: the database and its migrations, the synced cache, the outbox.

Also the compiled templates the cache holds, the data folder and the personal-data purge.
The bottom of the agent: may import `dockside` only.
"""
