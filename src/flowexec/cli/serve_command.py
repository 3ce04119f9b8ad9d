"""`flowexec serve`: the HTTP API over the database the global options name."""

from __future__ import annotations

from typing import Annotated

import typer

from flowexec.api.settings import SHUTDOWN_GRACE_S
from flowexec.cli.session import run, settings_of


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to bind.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=256, help="Server processes.")
    ] = 1,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without tokens, every request as an admin; loopback addresses only.",
        ),
    ] = False,
    shutdown_grace: Annotated[
        int,
        typer.Option(
            "--shutdown-grace",
            min=0,
            max=3600,
            help="Seconds a stopping server lets requests finish before it cuts event streams.",
        ),
    ] = SHUTDOWN_GRACE_S,
) -> None:
    """Serve the HTTP API (needs the `api` extra): executions, event streams, stats."""
    from flowexec.api.server import ServeOptions, check_can_serve
    from flowexec.api.server import serve as serve_api

    settings = settings_of(ctx)
    options = ServeOptions(
        url=settings.url,
        table_prefix=settings.table_prefix,
        host=host,
        port=port,
        workers=workers,
        insecure_no_auth=insecure_no_auth,
        shutdown_grace_s=shutdown_grace,
    )
    run(settings, check_can_serve(options))
    shown_host = f"[{host}]" if ":" in host else host  # an IPv6 address
    where = f"http://{shown_host}:{port}/api/v1"
    typer.echo(
        f"serving the flowexec API on {where} ({settings.shown_url}, table prefix "
        f"{settings.table_prefix}); documentation at {where}/docs",
        err=True,
    )
    serve_api(options)
