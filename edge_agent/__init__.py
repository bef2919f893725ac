"""The Dockside edge agent: the warehouse PC's side of Dockside.

It keeps a local SQLite copy of the rules, templates, stations and orders it needs, drives the
packing stations' printers and scales, answers the station page in milliseconds, and carries
every fact it produces back to the cloud through an outbox. It imports `dockside`, never `cloud`.
"""

from dockside import __version__

__all__ = ["__version__"]
