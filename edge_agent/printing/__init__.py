"""Printing: print jobs and the print queue every label goes through (hold, send, release).

May import `devices`, `store`, `edge_agent.metrics` and `dockside`.
"""
