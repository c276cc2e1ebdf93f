"""The oversight console: web pages to watch, understand and steer the factories of one store.

``darkfab ui`` serves it. It reads the store through the public Store and Registry API, so it runs beside
``darkfab run --forever``, ``darkfab serve`` and the workers, on SQLite or PostgreSQL. Server-rendered
pages (every value escaped), charts with the plotly.js that ships inside the ``plotly`` package (no CDN),
and levers behind an admin token login with CSRF-protected forms, each action recorded with its person
and reason.
"""

from __future__ import annotations

from ._app import create_app, plotly_js

__all__ = ["create_app", "plotly_js"]
