"""The gRPC Sync service: enrollment, the Watch stream of changes, edge events, TLS.

May import the capabilities below the API (`fleet`, `labels`, `decisions`, `orders`, `webhooks`,
`access`), `storage`, `cloud.metrics` and `dockside`.
"""
