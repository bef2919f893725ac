"""Orders: ingest from an OMS, the order read back with its timeline, the order state machine,
parcels (as the edge reports them, read back, the OMS's carrier label for one, overdue on the
dock, labels bought from a carrier API as recorded on their row), waves, the exception center,
privacy.

May import `webhooks` (state changes are announced), `storage` and `dockside`.
"""
