"""Webhooks: subscriptions, events written with the change that caused them, signed delivery.

May import `storage` and `dockside`.
"""
