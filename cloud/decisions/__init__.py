"""The decision center: ruleset versions, simulation against past orders, publish.

May import `labels` (rulesets name templates), `storage` and `dockside`.
"""
