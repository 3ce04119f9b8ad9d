"""A client of the HTTP API (`flowexec serve`); needs `httpx` (the `http` or `api` extra)."""

from flowexec.http.client import HttpClient

__all__ = ["HttpClient"]
