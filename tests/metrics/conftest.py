"""The metrics tests drive the real CLI too: they share its `cli` fixture."""

from __future__ import annotations

from tests.cli.conftest import cli

__all__ = ["cli"]
