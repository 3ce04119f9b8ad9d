"""Which backend a database URL names, and how to show a URL without its password."""

from __future__ import annotations

import os
import re

from flowexec.errors import ConfigError

DEFAULT_URL = "sqlite:///flowexec.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEME = "sqlite"

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    return _PASSWORD.sub(r"\1***@", url)


def resolve(url: str | None) -> str:
    """The URL given, else `FLOWEXEC_DATABASE_URL`, else the embedded default."""
    if url is None:
        url = os.environ.get("FLOWEXEC_DATABASE_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the database URL must be a non-empty string")
    return url


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{redact(url)!r} is not a database URL: expected postgresql://… or sqlite:///path"
        )
    scheme = scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme == SQLITE_SCHEME:
        return "sqlite"
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r} in {redact(url)!r}: "
        "use postgresql://, postgres:// or sqlite:///"
    )
