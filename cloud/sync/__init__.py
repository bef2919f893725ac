"""The gRPC Sync service: enrollment, the Watch stream of changes, edge events, TLS.

May import the capabilities below it (`records`, `decisions`, `labels`, `fleet`, `access`,
`orders`, `webhooks`), `storage`, `cloud.metrics` and `dockside`; never the HTTP side.
"""
