"""Labels: template versions, their staged rollout to warehouses, and their previews.

May import `storage` and `dockside`.
"""
