"""The HTTP API (`flowexec serve`): FastAPI over a store; needs the `api` extra.

Names are imported on first use, so the command line can read the API's settings without
loading FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowexec.lazy import lazy_exports

if TYPE_CHECKING:
    from flowexec.api.app import create_app
    from flowexec.api.settings import API_PREFIX, ApiSettings

__getattr__ = lazy_exports(
    globals(),
    {
        "API_PREFIX": "flowexec.api.settings",
        "create_app": "flowexec.api.app",
        "ApiSettings": "flowexec.api.settings",
    },
)

__all__ = ["API_PREFIX", "ApiSettings", "create_app"]
