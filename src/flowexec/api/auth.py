"""Who is calling: a bearer token's owner, and what it may see (docs/architecture.md §12).

A non-admin token sees only its owner's executions; any other execution answers exactly as a
missing one, so ids of other owners cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowexec.api.problems import ApiProblem
from flowexec.api.settings import ApiSettings
from flowexec.errors import ExecutionNotFound
from flowexec.model import Execution
from flowexec.store.protocol import ExecutionStore
from flowexec.store.tokens import ApiToken

ANONYMOUS = "anonymous"

_bearer = HTTPBearer(auto_error=False, description="A token from `flowexec tokens create`.")


@dataclass(frozen=True, slots=True)
class Principal:
    owner_id: str
    admin: bool
    key: str
    """Identifies the token, for per-token bounds such as concurrent streams."""

    def may_see(self, execution: Execution) -> bool:
        return self.admin or execution.owner_id == self.owner_id

    @property
    def owner_filter(self) -> str | None:
        """The `owner_id` a listing is narrowed to: none for an admin, else its own."""
        return None if self.admin else self.owner_id

    def visible(self, execution: Execution | None, execution_id: str) -> Execution:
        """The execution if it exists for this caller; else `ExecutionNotFound`, alike for a
        missing id and another owner's execution."""
        if execution is None or not self.may_see(execution):
            raise ExecutionNotFound(execution_id)
        return execution

    def owner_for(self, requested: str | None) -> str:
        """The owner of an execution this caller creates: its own, or any for an admin."""
        if requested is None or requested == self.owner_id:
            return self.owner_id
        if not self.admin:
            raise ApiProblem(
                403, "owner-forbidden",
                f"this token acts as owner {self.owner_id!r}; only an admin token may create "
                "executions for another owner",
            )
        return requested

    @classmethod
    def of(cls, token: ApiToken) -> Principal:
        return cls(owner_id=token.owner_id, admin=token.admin, key=token.token_id)


EVERYONE = Principal(owner_id=ANONYMOUS, admin=True, key=ANONYMOUS)
"""Who every request is when the server runs without authentication."""


def api_store(request: Request) -> ExecutionStore:
    store: ExecutionStore = request.app.state.store
    return store


def api_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if not api_settings(request).auth:
        return EVERYONE
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiProblem(
            401, "unauthorized", "send 'Authorization: Bearer <token>'", _UNAUTHORIZED
        )
    token = await api_store(request).authenticate(credentials.credentials)
    if token is None:
        raise ApiProblem(401, "unauthorized", "the token is unknown or revoked", _UNAUTHORIZED)
    return Principal.of(token)


Caller = Annotated[Principal, Depends(principal)]
Store = Annotated[ExecutionStore, Depends(api_store)]
