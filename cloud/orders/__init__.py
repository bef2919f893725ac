"""Orders: ingest from an OMS, the order state machine, waves, the exception center, privacy.

May import `webhooks` (state changes are announced), `storage` and `dockside`.
"""
