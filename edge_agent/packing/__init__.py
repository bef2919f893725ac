"""Packing: the pack decision at a station, and waves printed in one run.

May import `printing`, `devices`, `store`, `edge_agent.metrics` and `dockside`.
"""
