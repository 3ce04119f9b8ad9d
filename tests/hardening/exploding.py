"""A command that fails the way no command should: to see what the CLI does with it."""

from __future__ import annotations

import typer


def explode(ctx: typer.Context) -> None:
    """Raise an error no command expects, quoting a URL with a password."""
    raise RuntimeError("lost postgresql://admin:s3cret@db/x\nsecond line")
