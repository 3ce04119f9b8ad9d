"""`python -m flowexec` is the `flowexec` command."""

from __future__ import annotations

from flowexec.cli import main

if __name__ == "__main__":
    main()
