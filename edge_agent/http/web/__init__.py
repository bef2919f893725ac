"""The station page: the packer's screen, served by the agent with its live event stream.

The page is plain HTML, CSS and ES modules shipped as package data (no build step); this
package adds the routes that serve it and the server-sent events it listens to.
"""

from __future__ import annotations

from edge_agent.http.web.routes import station_page_router

__all__ = ["station_page_router"]
