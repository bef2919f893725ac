"""The Dockside control plane: admin HTTP API, gRPC sync service and the storage behind them.

`dockside-cloud serve` runs both servers in one process; `cloud.storage.store.CloudStore` is the one way
into the database (SQLite by default, PostgreSQL in production).

One package per capability. Imports run one way, top to bottom (`.importlinter`, cloud-layers):

    commands            the `dockside-cloud` CLI
    server              runs the HTTP app and the gRPC service together (cloud/server.py)
    app                 assembles the HTTP app from api and console (cloud/app.py)
    api | console       the admin API routers; the console's pages (siblings, never each other)
    sync                the gRPC Sync service: enrollment, Watch, edge events, TLS
    records             the audit log and exports
    decisions           rulesets and their simulation
    labels              templates, rollout, previews
    fleet               warehouses, stations, agents, releases
    access              tokens, principals, roles, users, sign-in limits, access alerts, callers
    shipping            carrier accounts, number ranges and leases to agents, manifests, carrier APIs
    orders              ingest, states, waves, exceptions, privacy
    webhooks            subscriptions and signed delivery
    storage             the database: store, schema, versions, notifiers, migrations
    metrics             the cloud's Prometheus metrics (a leaf)
"""
