"""Names a package re-exports without importing their modules until first use, so that a
command line that needs little starts quickly (`flowexec --version` loads no runtime)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for the module whose `globals()` is `namespace`: it imports
    `exports[name]` (a module path) on first access."""
    package = namespace["__name__"]

    def attribute(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups find it without this function
        return value

    return attribute
