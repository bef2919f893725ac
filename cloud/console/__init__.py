"""The admin console: static pages served by the cloud under /console/, over the admin API."""

from __future__ import annotations

from cloud.console.routes import console_router

__all__ = ["console_router"]
