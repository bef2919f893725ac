"""The Dockside control plane: admin HTTP API, gRPC sync service and the storage behind them.

`dockside-cloud serve` runs both servers in one process; `cloud.storage.store.CloudStore` is the one way
into the database (SQLite by default, PostgreSQL in production).
"""
