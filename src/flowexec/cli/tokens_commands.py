"""`flowexec tokens create|ls|revoke`: the API tokens `flowexec serve` accepts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flowexec.cli.render import format_time, print_json, stdout_console
from flowexec.cli.session import JsonFlag, fail, opened_store, run, settings_of, wants_json
from flowexec.store.tokens import ApiToken

tokens = typer.Typer(
    help="API tokens for `flowexec serve`: each acts as one owner, or as an admin.",
    no_args_is_help=True,
)


def _token_json(token: ApiToken) -> dict[str, object]:
    return {
        "name": token.name,
        "owner_id": token.owner_id,
        "admin": token.admin,
        "created_at": token.created_at.isoformat(),
    }


@tokens.command("create")
def create_token(
    ctx: typer.Context,
    owner: Annotated[str, typer.Option("--owner", help="The owner the token acts as.")],
    admin: Annotated[
        bool, typer.Option("--admin", help="May act on every owner's executions.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="A name to list and revoke it by.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it once: only a hash of it is kept."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings) as store:
            issued = await store.create_token(owner, name=name, admin=admin)
        if wants_json(ctx, as_json):
            print_json({**_token_json(issued.token), "token": issued.bearer})
            return
        print(issued.bearer)
        typer.echo(
            f"token {issued.token.name!r} for owner {owner!r}{' (admin)' if admin else ''}: "
            "shown once, store it now",
            err=True,
        )

    run(settings, body())


@tokens.command("ls")
def list_tokens(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List tokens (names and owners; the tokens themselves are not stored)."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings) as store:
            found = await store.list_tokens()
        if wants_json(ctx, as_json):
            print_json([_token_json(t) for t in found])
            return
        table = Table("name", "owner", "admin", "created")
        for token in found:
            admin = "yes" if token.admin else ""
            table.add_row(token.name, token.owner_id, admin, format_time(token.created_at))
        stdout_console().print(table)

    run(settings, body())


@tokens.command("revoke")
def revoke_token(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke a token: the server refuses it from its next request."""
    settings = settings_of(ctx)

    async def body() -> bool:
        async with opened_store(settings) as store:
            return await store.revoke_token(name)

    if not run(settings, body()):
        fail(f"no token is named {name!r}")
    typer.echo(f"revoked token {name!r}", err=True)
