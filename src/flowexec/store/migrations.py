"""Versioned SQL files beside each backend, with the table prefix filled in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from flowexec.errors import ConfigError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str, table_prefix: str) -> list[Migration]:
    """Every `NNNN_name.sql` in `<package>/migrations`, in version order.

    `{prefix}` in the SQL becomes the (already validated) table prefix.
    """
    found: list[Migration] = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        sql = entry.read_text(encoding="utf-8").replace("{prefix}", table_prefix)
        found.append(Migration(int(match.group(1)), f"{match.group(1)}_{match.group(2)}", sql))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise ConfigError(f"migrations of {package} are not numbered 1..n: {versions}")
    return found


def pending(
    migrations: list[Migration], applied: set[int], target_version: int | None
) -> list[Migration]:
    if target_version is not None and not 0 <= target_version <= len(migrations):
        raise ConfigError(
            f"target_version must be between 0 and {len(migrations)}, got {target_version}"
        )
    top = len(migrations) if target_version is None else target_version
    return [m for m in migrations if m.version not in applied and m.version <= top]
