"""Orders: ingest from an OMS, the order read back with its timeline, the order state machine,
waves, the exception center, privacy.

May import `webhooks` (state changes are announced), `storage` and `dockside`.
"""
