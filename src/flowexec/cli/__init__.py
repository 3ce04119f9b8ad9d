"""The `flowexec` command line (typer + rich) over the store and the runtime."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from flowexec.lazy import lazy_exports

if TYPE_CHECKING:
    from flowexec.cli.app import app

__all__ = ["app", "main"]

__getattr__ = lazy_exports(globals(), {"app": "flowexec.cli.app"})


def main() -> None:
    """The console script's entry point. `flowexec --version` answers before typer, rich or
    the store are imported; every other command goes through the app."""
    if sys.argv[1:] == ["--version"]:
        from flowexec.version import __version__

        print(f"flowexec {__version__}")
        return
    from flowexec.cli.app import main as run_app

    run_app()
