"""The `flowexec` command line (typer + rich) over the store and the runtime."""

from __future__ import annotations

from flowexec.cli.app import app, main

__all__ = ["app", "main"]
