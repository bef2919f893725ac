"""The admin console: static pages served by the cloud under /console/, over the admin API.

A sibling of `cloud.api`, never importing it: the pages call the API over HTTP like any client.
May import `access` (who is calling), `storage` and `dockside`.
"""

from __future__ import annotations

from cloud.console.routes import console_router

__all__ = ["console_router"]
