"""The HTTP API (`flowexec serve`): FastAPI over a store; needs the `api` extra."""

from flowexec.api.app import API_PREFIX, create_app
from flowexec.api.settings import ApiSettings

__all__ = ["API_PREFIX", "ApiSettings", "create_app"]
