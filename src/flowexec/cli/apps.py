"""Find the user's `App` from a `module:attribute` string, as `--app` gives it."""

from __future__ import annotations

import importlib
import os
import sys
from functools import reduce

from flowexec.errors import ConfigError
from flowexec.runtime import App


def load_app(spec: str) -> App:
    """Import `module:attr` (attr may be dotted); the current directory is importable, as in
    `python -m`, so `--app myflows:app` works from the project directory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"--app {spec!r} must look like module:attribute, e.g. myflows:app")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(f"--app: no module named {module_name!r}") from exc
        raise ConfigError(f"--app: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(
            f"--app: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        found = reduce(getattr, attribute.split("."), module)
    except AttributeError:
        raise ConfigError(f"--app: module {module_name!r} has no {attribute!r}") from None
    if not isinstance(found, App):
        raise ConfigError(
            f"--app: {spec!r} is a {type(found).__name__}, not a flowexec App"
        )
    return found
