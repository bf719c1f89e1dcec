"""The web dashboard (``/dashboard``): accounts, API keys, Live / Test data, session pages and charts.

Server-rendered (Jinja2 templates, one CSS file, charts as inline SVG drawn in :mod:`._svg`), mounted by the
server's app factory with ``app.include_router(dashboard_router(stores))``. See docs/dashboard.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._routes import dashboard_router

__all__ = ["dashboard_router"]


def __getattr__(name: str) -> Any:
    # Lazy: the chart builders (``sleeptrack.dashboard._svg``) import without the server's dependencies.
    if name == "dashboard_router":
        from ._routes import dashboard_router

        return dashboard_router
    raise AttributeError(name)
