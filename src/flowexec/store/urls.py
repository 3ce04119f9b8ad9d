"""Database URLs: which backend one names, the file a SQLite URL names, and how to show a URL
(or a libpq connection string, or a driver's error text) without its password."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from flowexec.errors import ConfigError

DEFAULT_URL = "sqlite:///flowexec.db"
SESSION_URL_ENV = "FLOWEXEC_SESSION_DATABASE_URL"
"""Where a PostgreSQL store's `session_url` (for LISTEN) comes from when none is given."""
POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEME = "sqlite"

_UNUSABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL, and lone surrogates: command-line bytes that were not UTF-8 arrive as those."""
HIDDEN = "***"
_USERINFO_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)[^@\s]*@")
"""`scheme://user:password@host`: everything up to the last `@` of the URL, to be safe."""
_KEYWORD_PASSWORD = re.compile(
    r"""(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'][^\s]*|(?=\s|$))""",
    re.IGNORECASE,
)
"""`password=…` and `sslpassword=…`: in a URL's query string, and libpq `key=value` strings
with quoted or bare values; a bare value is hidden up to the next space (an `&` may be part
of a password)."""


def redact(text: str) -> str:
    """`text` (a URL, a libpq connection string, an error that may quote one) with every
    password replaced by `***`: the one way flowexec shows connection details."""
    text = _USERINFO_PASSWORD.sub(rf"\g<1>{HIDDEN}@", text)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{HIDDEN}", text)


def resolve(url: str | None) -> str:
    """The URL given, else `FLOWEXEC_DATABASE_URL`, else the embedded default."""
    if url is None:
        url = os.environ.get("FLOWEXEC_DATABASE_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the database URL must be a non-empty string")
    if _UNUSABLE.search(url):
        raise ConfigError(
            "the database URL contains a NUL character or bytes that are not valid UTF-8"
        )
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


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """The database a `sqlite:` URL names: an absolute file path, or None for `:memory:`."""

    url: str
    path: Path | None

    @property
    def display(self) -> str:
        return ":memory:" if self.path is None else str(self.path)

    def exists(self) -> bool:
        """Whether the database is there already (`:memory:` always is)."""
        try:
            return self.path is None or self.path.exists()
        except OSError as exc:  # a name too long for the file system, say
            raise ConfigError(f"cannot use SQLite database {self.path}: {exc.strerror}") from None


def parse_sqlite_url(url: str) -> SqliteTarget:
    """`sqlite:///relative.db` (from the working directory), `sqlite:////abs.db`, `:memory:`."""
    if not isinstance(url, str):
        raise ConfigError(f"the database URL must be a string, not {type(url).__name__}")
    usage = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SQLITE_SCHEME:
        raise ConfigError(f"{url!r} is not a SQLite URL: {usage}")
    if not rest.strip("/"):
        raise ConfigError(f"SQLite URL {url!r} names no database file: {usage}")
    if not rest.startswith("/"):
        host = rest.split("/", 1)[0]
        raise ConfigError(f"SQLite URL {url!r} names a host ({host!r}); it takes none: {usage}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ConfigError(
            f"SQLite URL {url!r} has a query string or fragment; pass options to open_store "
            "as keyword arguments instead"
        )
    if "\x00" in path:
        raise ConfigError(f"SQLite URL {url!r} contains a NUL character")
    if path == ":memory:":
        return SqliteTarget(url, None)
    return SqliteTarget(url, Path(os.path.abspath(path)))
