"""Dockside core: what the edge agent and the cloud both run.

Domain types, rule evaluation, label rendering and the generated wire stubs.
Nothing here does I/O beyond what a function is handed.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
