"""API tokens: who may call `flowexec serve`, once for every SQL backend.

A token reads `fxt_<token_id>_<secret>`. The store keeps the id, the owner, the admin flag and a
SHA-256 hash of the secret, never the secret itself; `authenticate` finds the row by id and
compares hashes in constant time, so neither a stolen table nor response timing gives a token
away (docs/architecture.md §12).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from flowexec.errors import ValidationError
from flowexec.model import check_id
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row

TOKEN_PREFIX = "fxt_"
_TOKEN = re.compile(r"fxt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ApiToken:
    """What a token grants: it acts as `owner_id`, on every owner's executions if `admin`."""

    name: str
    owner_id: str
    admin: bool
    created_at: datetime
    token_id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created; `bearer` is shown once and stored nowhere."""

    token: ApiToken
    bearer: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_token_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            "a token name is 1 to 64 letters, digits, '_', '.' or '-', starting with a letter "
            "or digit"
        )
    return name


def token_from_row(row: Row) -> ApiToken:
    return ApiToken(
        name=row["name"],
        owner_id=row["owner_id"],
        admin=bool(row["admin"]),
        created_at=row["created_at"],
        token_id=row["token_id"],
    )


@runtime_checkable
class TokenStore(Protocol):
    """The API tokens' methods of `ExecutionStore`."""

    async def create_token(
        self, owner_id: str, *, name: str | None = None, admin: bool = False
    ) -> IssuedToken:
        """A new API token acting as `owner_id` (on every owner's executions if `admin`);
        only a hash of its secret is stored, so `IssuedToken.bearer` is shown once."""
        ...

    async def list_tokens(self) -> list[ApiToken]: ...

    async def revoke_token(self, name: str) -> bool:
        """Delete the token at once; False if no token has that name."""
        ...

    async def authenticate(self, bearer: str) -> ApiToken | None:
        """The live token `bearer` is, compared in constant time; None for anything else."""
        ...


class TokenFacade(SqlPrimitives):
    async def create_token(
        self, owner_id: str, *, name: str | None = None, admin: bool = False
    ) -> IssuedToken:
        """A new token acting as `owner_id`; its name defaults to its id. A name in use is a
        `ValidationError`."""
        check_id(owner_id, "owner_id")
        if not isinstance(admin, bool):
            raise ValidationError(f"admin must be a bool, not {type(admin).__name__}")
        token_id = secrets.token_hex(8)
        name = token_id if name is None else check_token_name(name)
        secret = secrets.token_urlsafe(32)
        params: dict[str, Any] = {
            "token_id": token_id,
            "name": name,
            "owner_id": owner_id,
            "admin": admin,
            "secret_hash": _hash(secret),
        }
        row = await self._insert_token(params)
        if row is None:
            raise ValidationError(f"a token named {name!r} exists; revoke it or pick another name")
        return IssuedToken(token_from_row(row), f"{TOKEN_PREFIX}{token_id}_{secret}")

    async def list_tokens(self) -> list[ApiToken]:
        """Every live token, by name; secrets are not stored, so none is shown."""
        return [token_from_row(r) for r in await self._token_rows()]

    async def revoke_token(self, name: str) -> bool:
        """Delete the token named `name` at once; False if there is none."""
        return await self._delete_token(check_token_name(name))

    async def authenticate(self, bearer: str) -> ApiToken | None:
        """The token `bearer` names, if it is live and its secret matches; else None."""
        match = _TOKEN.fullmatch(bearer) if isinstance(bearer, str) else None
        if match is None:
            return None
        token_id, secret = match.groups()
        row = await self._token_row(token_id)
        if row is None or not hmac.compare_digest(row["secret_hash"], _hash(secret)):
            return None
        return token_from_row(row)

    @abstractmethod
    async def _insert_token(self, params: dict[str, Any]) -> Row | None:
        """Insert unless the name is taken; the new row, or None."""

    @abstractmethod
    async def _token_rows(self) -> list[Row]: ...

    @abstractmethod
    async def _token_row(self, token_id: str) -> Row | None: ...

    @abstractmethod
    async def _delete_token(self, name: str) -> bool: ...
