"""Storage: the one way into the cloud database, its tables, migrations and change log.

Owns the engine and transactions (`store`), the tables (`schema`), the immutable numbered versions
templates and rulesets share (`versions`), the revision notifiers that wake Watch streams,
change-log compaction, the secrets sealed at rest and the garbage-collector pause for bulk work.
May import `dockside` only: every other cloud package builds on it.
"""
